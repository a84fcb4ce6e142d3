"""Benchmark (eval) sets for `decontaminate`: reading them, their word n-grams, and the n-gram index.

Words are the filters' words (`filters.words`), lowercased, with Unicode punctuation and symbols
stripped from each (a word that was only punctuation disappears), so `"The U.S. said, 'no.'"` and
`the US said no` give the same words. A word hashes to 64 bits with BLAKE2b and an n-gram to a
polynomial of its words' hashes, mixed by splitmix64's finaliser: the same value in every process
(Python's `hash()` is salted per process). An eval item with at least `ngram` words contributes
all its n-grams; one with fewer (but at least `min_eval_words`) contributes its whole word
sequence as one n-gram of its own length, so it matches only as a contiguous whole.

The index (`EvalIndex`) maps each n-gram length to its sorted distinct hashes and, per hash, the
(eval set, item) pairs that contain it. It is built once per run, saved as one `.npz` file in the
stage's directory, and loaded once per worker process (`load_index`, cached by path).

    index = build_index(params.eval_sets, ngram=13, min_eval_words=8)
    words, starts, ends = normalized_words("Some text, to match.")
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
import pyarrow.parquet as pq
import regex
from pydantic import Field

from filters.words import split_words
from pipeline.stage import StageParams

_CHUNK = re.compile(r"\S+")
_PUNCTUATION = regex.compile(r"[\p{P}\p{S}]+")
_PRIME = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: odd, so the polynomial keeps every bit
_MAX_CACHED_CHUNKS = 500_000
_CHUNKS: dict[str, tuple[tuple[tuple[str, int, int], ...], tuple[int, ...]]] = {}


class EvalSet(StageParams):
    """One benchmark whose text must not appear in the training data."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="names the set in reasons, metadata and reports")
    path: str = Field(description="fsspec path of the set (compression inferred from the extension)")
    format: Literal["jsonl", "parquet", "text"] = Field("jsonl", description="text: one item per non-empty line")
    fields: tuple[str, ...] = Field(("text",), min_length=1,
                                    description="fields whose values, joined, are the item's text (a.b for nested)")
    id_field: str | None = Field("id", description="field naming the item; its line/row number where absent")


# -- words and n-gram hashes ------------------------------------------------------------------

def normalize_word(word: str) -> str:
    return _PUNCTUATION.sub("", word.lower())


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little", signed=True)


def _chunk_words(chunk: str) -> tuple[tuple[tuple[str, int, int], ...], tuple[int, ...]]:
    """The (normalised word, start, end) of the words of one whitespace-free chunk and their
    hashes, cached: most chunks of a corpus are common words seen many times."""
    found = _CHUNKS.get(chunk)
    if found is None:
        out, pos = [], 0
        for token in ((chunk,) if chunk.isalpha() else split_words(chunk)):
            at = chunk.find(token, pos)  # the splitter returns substrings of the chunk, in order
            pos = at + len(token)
            if word := normalize_word(token):
                out.append((word, at, pos))
        if len(_CHUNKS) >= _MAX_CACHED_CHUNKS:
            _CHUNKS.clear()
        found = _CHUNKS[chunk] = (tuple(out), tuple(_word_hash(w) for w, _, _ in out))
    return found


def document_hashes(text: str) -> np.ndarray:
    """The hashes of the normalised words of `text` (the fast path: no offsets)."""
    out: list[int] = []
    cached = _CHUNKS.get  # inlined lookup: this loop runs once per word of the corpus
    for chunk in (text or "").split():  # the same chunks as _CHUNK (str.isspace is re's \s)
        found = cached(chunk) or _chunk_words(chunk)
        out.extend(found[1])
    return np.array(out, dtype=np.int64).view(np.uint64)


def normalized_words(text: str) -> tuple[list[str], list[int], list[int]]:
    """The normalised words of `text` and each one's start and end offset in `text`."""
    words, starts, ends = [], [], []
    for match in _CHUNK.finditer(text or ""):
        base = match.start()
        for word, start, end in _chunk_words(match.group())[0]:
            words.append(word)
            starts.append(base + start)
            ends.append(base + end)
    return words, starts, ends


def word_hashes(words: list[str]) -> np.ndarray:
    return np.array([_word_hash(w) for w in words], dtype=np.int64).view(np.uint64)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the polynomial's low-entropy bits over all 64."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of every n-gram (window of `n` words) of a document's word hashes."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):  # arithmetic mod 2**64 on purpose
        for j in range(n):
            acc = acc * _PRIME + hashes[j:j + count]
        return _mix64(acc ^ np.uint64(n))


# -- reading eval sets ------------------------------------------------------------------------

def _field(record: dict, dotted: str) -> Any:
    value: Any = record
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(_as_text(v) for v in value)
    return str(value)


def _records(spec: EvalSet) -> Iterator[tuple[int, dict]]:
    """(line or row number from 1, record) of every item; blank lines are not items."""
    if spec.format == "parquet":
        with fsspec.open(spec.path, "rb") as f:
            yield from enumerate(pq.read_table(io.BytesIO(f.read())).to_pylist(), start=1)
        return
    with fsspec.open(spec.path, "rt", compression="infer", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, ({"text": line.rstrip("\n")} if spec.format == "text" else json.loads(line))


def eval_items(spec: EvalSet) -> Iterator[tuple[str, str]]:
    """(item id, item text) of every item of `spec`; the text joins the `fields` with spaces and
    the id is `id_field`'s value or `<set name>:<line or row number>`."""
    fields = ("text",) if spec.format == "text" else spec.fields
    for number, record in _records(spec):
        ident = _field(record, spec.id_field) if spec.id_field else None
        text = " ".join(t for t in (_as_text(_field(record, f)) for f in fields) if t)
        yield (str(ident) if ident is not None else f"{spec.name}:{number}"), text


def eval_set_digest(spec: EvalSet) -> str:
    """sha256 of the set's bytes (in the stage fingerprint: a changed benchmark reruns the stage)."""
    digest = hashlib.sha256()
    with fsspec.open(spec.path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the index --------------------------------------------------------------------------------

@dataclasses.dataclass
class EvalIndex:
    """Per n-gram length n: `keys[n]` sorted distinct hashes; the owners of keys[n][k] are
    `owner_set[n][offsets[n][k]:offsets[n][k+1]]` (eval set number) and `owner_item[n][...]`."""

    set_names: list[str]
    item_ids: list[list[str]]
    keys: dict[int, np.ndarray]
    offsets: dict[int, np.ndarray]
    owner_set: dict[int, np.ndarray]
    owner_item: dict[int, np.ndarray]

    def save(self, path: Path) -> None:
        arrays = {"set_names": np.array(self.set_names, dtype=str)}
        for s, ids in enumerate(self.item_ids):
            arrays[f"items_{s}"] = np.array(ids, dtype=str)
        for n in self.keys:
            arrays.update({f"keys_{n}": self.keys[n], f"offsets_{n}": self.offsets[n],
                           f"set_{n}": self.owner_set[n], f"item_{n}": self.owner_item[n]})
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> EvalIndex:
        with np.load(path) as data:
            names = [str(n) for n in data["set_names"]]
            item_ids = [[str(i) for i in data[f"items_{s}"]] for s in range(len(names))]
            lengths = sorted(int(k.split("_")[1]) for k in data.files if k.startswith("keys_"))
            return cls(names, item_ids, {n: data[f"keys_{n}"] for n in lengths},
                       {n: data[f"offsets_{n}"] for n in lengths}, {n: data[f"set_{n}"] for n in lengths},
                       {n: data[f"item_{n}"] for n in lengths})


def build_index(sets: tuple[EvalSet, ...], ngram: int, min_eval_words: int) -> tuple[EvalIndex, dict]:
    """The n-gram index of `sets` and a summary per set (items, short items, n-grams)."""
    grams: dict[int, list[tuple[np.ndarray, int, int]]] = {}
    item_ids, summary = [], {}
    for s, spec in enumerate(sets):
        ids, counts = [], {"items": 0, "items_too_short": 0, "items_matched_whole": 0, "ngrams": 0}
        for item, (ident, text) in enumerate(eval_items(spec)):
            ids.append(ident)
            counts["items"] += 1
            hashes = document_hashes(text)
            if len(hashes) < min_eval_words:
                counts["items_too_short"] += 1
                continue
            n = min(ngram, len(hashes))
            counts["items_matched_whole"] += n < ngram
            hashes = np.unique(ngram_hashes(hashes, n))
            counts["ngrams"] += len(hashes)
            grams.setdefault(n, []).append((hashes, s, item))
        item_ids.append(ids)
        summary[spec.name] = counts
    return _assemble([spec.name for spec in sets], item_ids, grams), summary


def _assemble(names: list[str], item_ids: list[list[str]], grams: dict) -> EvalIndex:
    keys, offsets, owner_set, owner_item = {}, {}, {}, {}
    for n, entries in sorted(grams.items()):
        hashes = np.concatenate([h for h, _, _ in entries])
        sets = np.concatenate([np.full(len(h), s, np.int32) for h, s, _ in entries])
        items = np.concatenate([np.full(len(h), i, np.int32) for h, _, i in entries])
        order = np.lexsort((items, sets, hashes))  # by hash, then owner: deterministic
        hashes, sets, items = hashes[order], sets[order], items[order]
        keys[n], starts = np.unique(hashes, return_index=True)
        offsets[n] = np.append(starts, len(hashes)).astype(np.int64)
        owner_set[n], owner_item[n] = sets, items
    return EvalIndex(names, item_ids, keys, offsets, owner_set, owner_item)


def load_item_ids(path: Path) -> list[list[str]]:
    """Only the item ids of the index at `path` (what the client needs for the report)."""
    with np.load(path) as data:
        return [[str(i) for i in data[f"items_{s}"]] for s in range(len(data["set_names"]))]


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> EvalIndex:
    return EvalIndex.load(Path(path))


def load_index(path: Path) -> EvalIndex:
    """The index saved at `path`, loaded once per process (keyed by path, mtime and size)."""
    st = os.stat(path)
    return _load_cached(str(path), st.st_mtime_ns, st.st_size)
