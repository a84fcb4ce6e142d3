"""Encoding on Dask workers: one input part -> per-domain temporary token files + a table
of its documents.

The sentencepiece model is loaded once per worker process (`load_processor` caches it by
path and sha256); tasks receive only the model's path, never the model. `encode_part` writes
`WORK/<part>/<domain>.bin|.idx` (every non-empty document's tokens followed by EOS, in row
order) and then `WORK/<part>/docs.parquet`, one row per input row, which marks the part done
(a resumed run skips it); the client reads back only its numeric columns.
`count_part_tokens` only counts (the mix stage's exact mode).

    encode_part("OUT/05-mix/part-e000-00000-0000.parquet", "OUT/06-tokenize/_work",
                model_path="OUT/06-tokenize/tokenizer.model", sha256="...", dtype="uint16")
"""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import storage
from pipeline.io import write_parquet
from pipeline.parts import read_part
from tokenization.indexed import IndexedWriter
from tokenization.sample import doc_keys

BATCH_DOCS = 256
VALID_KEY_PREFIX = "valid:"  # a document's valid_key is doc_key(seed, "valid:" + original id)
DEFAULT_DOMAIN = "default"  # documents that no input spec or classifier gave a domain
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_PROCESSORS: dict[tuple[str, str], object] = {}

DOCS_SCHEMA = pa.schema([
    ("row", pa.int64()), ("id", pa.string()), ("domain", pa.string()), ("source", pa.string()),
    ("original_id", pa.string()), ("epoch", pa.int32()), ("rank", pa.int64()),
    ("index", pa.int64()), ("tokens", pa.int64()), ("bytes", pa.int64()), ("valid_key", pa.uint64()),
    ("trim_key", pa.uint64()),
])


def load_processor(model_path: str, sha256: str = ""):
    """The sentencepiece processor for `model_path`, loaded once per process."""
    key = (str(model_path), sha256)
    if key not in _PROCESSORS:
        import sentencepiece as spm

        _PROCESSORS[key] = spm.SentencePieceProcessor(model_file=storage.local_file(model_path))
    return _PROCESSORS[key]


def domain_dir_name(domain: str | None) -> str:
    """A domain label as a safe directory name (unsafe characters become `_`)."""
    name = _SAFE.sub("_", domain) if domain else DEFAULT_DOMAIN
    return DEFAULT_DOMAIN if name in (".", "..") else name


def mix_fields(doc_id: str, metadata: str | None) -> tuple[str, int, int]:
    """(original id, epoch, rank) that the mix stage recorded, or the document's own."""
    mix = json.loads(metadata).get("mix") if metadata and '"mix"' in metadata else None
    if not mix:
        return doc_id, 0, 0
    return mix.get("original_id", doc_id), int(mix.get("epoch", 0)), int(mix.get("rank", 0))


def count_part_tokens(in_path: str, model_path: str, sha256: str = "") -> list[int]:
    """Tokens (without EOS) of every row's text, in row order."""
    sp = load_processor(model_path, sha256)
    texts = read_part(in_path, columns=["text"]).column("text").to_pylist()
    counts: list[int] = []
    for start in range(0, len(texts), BATCH_DOCS):
        batch = [t or "" for t in texts[start:start + BATCH_DOCS]]
        counts.extend(len(ids) for ids in sp.encode(batch, num_threads=1))
    return counts


class _DomainWriters:
    """One `IndexedWriter` per domain of a part, opened on first use."""

    def __init__(self, out_dir: str, dtype: np.dtype):
        self.out_dir, self.dtype = out_dir, dtype
        self.writers: dict[str, IndexedWriter] = {}

    def add(self, domain: str, arrays: list[np.ndarray], eos: np.ndarray) -> int:
        """Write documents `arrays` (each + EOS); return the index of the first one."""
        if domain not in self.writers:
            self.writers[domain] = IndexedWriter(storage.join(self.out_dir, domain), dtype=self.dtype.type)
        writer = self.writers[domain]
        first = len(writer.lengths)
        flat = np.concatenate([piece for a in arrays for piece in (a, eos)])
        writer.add_documents(flat.astype(self.dtype, copy=False), [len(a) + 1 for a in arrays])
        return first

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def encode_part(in_path: str, work_dir: str, model_path: str, sha256: str, dtype: str, seed: int = 0) -> pa.Table:
    """Encode one part; runs on a Dask worker. Returns the table it wrote as docs.parquet,
    whose `valid_key` (what `tokenization.plan.choose_valid` sorts by) and `trim_key` (what
    `find_trims` drops by) are hashed here, in parallel, rather than by the planner."""
    out_dir = storage.join(work_dir, storage.stem(in_path))
    sp = load_processor(model_path, sha256)
    eos = np.asarray([sp.eos_id()], dtype=np.int32)
    table = read_part(in_path, columns=["id", "text", "domain", "source", "metadata"])
    texts = table.column("text").to_pylist()
    raw_domains = table.column("domain").to_pylist()
    dir_names = {d: domain_dir_name(d) for d in set(raw_domains)}
    domains = [dir_names[d] for d in raw_domains]
    n = len(texts)
    tokens, index = np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    writers = _DomainWriters(out_dir, np.dtype(dtype))
    for start in range(0, n, BATCH_DOCS):
        stop = min(start + BATCH_DOCS, n)
        encoded = sp.encode([t or "" for t in texts[start:stop]], return_type="numpy", num_threads=1)
        by_domain: dict[str, list[int]] = {}
        for i in range(start, stop):
            if texts[i]:
                by_domain.setdefault(domains[i], []).append(i)
        for domain, members in by_domain.items():
            first = writers.add(domain, [encoded[i - start] for i in members], eos)
            index[members] = np.arange(first, first + len(members))
            tokens[members] = [len(encoded[i - start]) + 1 for i in members]
    writers.close()
    ids = table.column("id").to_pylist()
    originals, epochs, ranks = zip(*map(mix_fields, ids, table.column("metadata").to_pylist())) if n else ((), (), ())
    text_bytes = pc.fill_null(pc.binary_length(table.column("text")), 0).cast(pa.int64())
    docs = pa.table([np.arange(n), ids, domains, table.column("source"), list(originals), list(epochs), list(ranks),
                     index, tokens, text_bytes, doc_keys(seed, originals, VALID_KEY_PREFIX), doc_keys(seed, ids)],
                    schema=DOCS_SCHEMA)
    write_parquet(docs, storage.join(out_dir, "docs.parquet"))
    return docs
