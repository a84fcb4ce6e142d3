"""The Dask side of `thresher stats`: every measurement that reads documents runs here.

Each measurement starts from a list of files (Dask's advice: map a reader over paths): one
task per file fills an addable summary (`DocStats`, rejected examples, rejected documents
per label and reason, shard length histograms) from bounded batches, and a tree of `add`
tasks sums them, so neither a worker nor the client holds more than a batch and a few
fixed-size summaries. All measurements of a report are computed in one `client.compute`.

    with open_client(workers=2) as client:
        lazy = document_stats({"01-extract": files}, "text", TokenCounter(None), samples=2)
        stats = compute_all(client, lazy)["01-extract"]
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dask import delayed

from pipeline import storage
from pipeline.parts import view_of
from pipeline.report.docstats import NONE, DocStats, Lengths, estimate_tokens, snippet, stable_hash
from pipeline.report.sources import BATCH_ROWS, DocFile, iter_batches

SPLIT_EVERY = 8
EXAMPLES_PER_REASON = 3
ENCODE_BATCH = 64
DETAIL_COLUMNS = ("language", "language_score", "quality_score", "domain_score")
LABEL_COLUMNS = ("source", "domain", "language")


@dataclasses.dataclass(frozen=True)
class TokenCounter:
    """How documents' tokens are counted: with a sentencepiece model (exact, without EOS)
    or, without one, estimated as ceil(UTF-8 bytes / bytes_per_token)."""

    model: str | None
    sha256: str = ""
    bytes_per_token: float = 4.0

    @property
    def method(self) -> str:
        return "sentencepiece" if self.model else f"estimate: ceil(UTF-8 bytes / {self.bytes_per_token:g})"

    def count(self, text: pa.ChunkedArray) -> np.ndarray:
        if not self.model:
            n_bytes = pc.binary_length(text).fill_null(0).to_numpy(zero_copy_only=False)
            return estimate_tokens(n_bytes, self.bytes_per_token)
        from tokenization.encode import load_processor

        sp = load_processor(self.model, self.sha256)
        texts = [t or "" for t in text.to_pylist()]
        counts = []
        for start in range(0, len(texts), ENCODE_BATCH):
            counts.extend(len(ids) for ids in sp.encode(texts[start:start + ENCODE_BATCH], num_threads=1))
        return np.asarray(counts, dtype=np.int64)


# -- tasks (run on Dask workers) --------------------------------------------------------------

def file_stats(file: DocFile, text_field: str, tokens: TokenCounter, samples: int) -> DocStats:
    stats = DocStats(sample_size=samples)
    for table, unreadable in iter_batches(file, text_field):
        stats.unreadable += unreadable
        if table.num_rows:
            stats.add(table, tokens.count(table.column("text")))
    return stats


def add_all(items) -> DocStats:
    return sum(items, DocStats())


def rejected_examples(path: str, k: int = EXAMPLES_PER_REASON) -> dict[str, list]:
    """Per reason, the `k` rejected rows of one file with the smallest hash of their id, as
    (hash, id, url, snippet, details) tuples."""
    parquet = storage.parquet_file(path)
    names = parquet.schema_arrow.names
    columns = [c for c in ("id", "url", "text", "raw", "reason", *DETAIL_COLUMNS) if c in names]
    best: dict[str, list] = {}
    # Rejected pages may still hold their raw HTML: smaller batches keep memory bounded.
    batch_rows = 256 if "raw" in names else BATCH_ROWS
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        rows = batch.to_pylist()
        hashes = stable_hash([r.get("id") for r in rows])
        for h, row in sorted(zip(hashes.tolist(), rows), key=lambda x: (x[0], x[1].get("id") or "")):
            kept = best.setdefault(row.get("reason") or "(none)", [])
            if len(kept) < k:
                kept.append((h, row.get("id"), row.get("url"), _shown_text(row), _details(row)))
        best = {r: sorted(v, key=lambda x: (x[0], x[1] or ""))[:k] for r, v in best.items()}
    return best


def _shown_text(row: dict) -> str:
    text = row.get("text")
    if not text and row.get("raw"):
        text = bytes(row["raw"][:4000]).decode("utf-8", "replace")
    return snippet(text)


def _details(row: dict) -> dict:
    return {c: row[c] for c in DETAIL_COLUMNS if row.get(c) is not None}


def merge_examples(items, k: int = EXAMPLES_PER_REASON) -> dict[str, list]:
    out: dict[str, list] = {}
    for item in items:
        for reason, rows in item.items():
            out[reason] = sorted(out.get(reason, []) + rows, key=lambda x: (x[0], x[1] or ""))[:k]
    return out


def rejected_labels(path: str) -> Counter:
    """(column, value, reason) -> rejected documents of one file, for the label columns
    (source, domain, language; a missing one counts as "(none)"). Reads only those columns."""
    parquet = storage.parquet_file(path)
    names = parquet.schema_arrow.names
    out: Counter = Counter()
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=[c for c in (*LABEL_COLUMNS, "reason")
                                                                      if c in names]):
        reason = _labels(batch, "reason")
        for column in LABEL_COLUMNS:
            grouped = pa.table({"value": _labels(batch, column), "reason": reason}).group_by(
                ["value", "reason"]).aggregate([([], "count_all")])
            for value, why, n in zip(*(grouped.column(c).to_pylist() for c in ("value", "reason", "count_all"))):
                out[(column, value, why)] += n
    return out


def _labels(batch: pa.RecordBatch, column: str) -> pa.Array:
    if column not in batch.schema.names:
        return pa.array([NONE] * batch.num_rows, pa.string())
    return pc.cast(batch.column(column), pa.string()).fill_null(NONE)


def add_counters(items) -> Counter:
    return sum(items, Counter())


def shard_lengths(prefix: str, chunk: int = 1 << 20) -> Lengths:
    """Exact histogram of a Megatron shard's sequence lengths (tokens incl. EOS), read from
    its memory-mapped `.idx` a chunk at a time."""
    from tokenization.indexed import IndexedDataset

    lengths = Lengths()
    ds = IndexedDataset(prefix)
    for start in range(0, len(ds.lengths), chunk):
        lengths.add(np.asarray(ds.lengths[start:start + chunk], dtype=np.int64))
    return lengths


def add_lengths(items) -> Lengths:
    return sum(items, Lengths())


# -- graph building (client) --------------------------------------------------------------------

def tree_sum(items: list, add):
    """A lazy sum of lazy `items` by `add(list)`, SPLIT_EVERY at a time (a tree, so no task
    holds more than SPLIT_EVERY summaries)."""
    if not items:
        return None
    while len(items) > 1:
        items = [delayed(add, pure=True)(items[i:i + SPLIT_EVERY]) for i in range(0, len(items), SPLIT_EVERY)]
    return items[0]


def _file_key(path: str) -> tuple:
    """The same file under several names (the dedup stages hard-link their input parts, or
    copy them on an object store; views of a part pass on as the same spec) is measured once."""
    if (view := view_of(path)) is not None:
        return "view", view["source"], view["drop"]
    if not storage.is_local(path):
        info = storage.filesystem(path)[0].info(storage.filesystem(path)[1])
        return info.get("ETag") or path, info.get("size")
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def document_stats(sets: dict[str, list[DocFile]], text_field: str, tokens: TokenCounter,
                   samples: int = 0) -> dict[str, object]:
    """A lazy DocStats per named set of files; a file shared by several sets is read once."""
    per_file: dict[tuple, object] = {}
    out = {}
    for name, files in sets.items():
        for f in files:
            key = _file_key(f.path)
            if key not in per_file:
                per_file[key] = delayed(file_stats, pure=True)(f, text_field, tokens, samples)
        out[name] = tree_sum([per_file[_file_key(f.path)] for f in files], add_all)
    return out


def examples_of(paths: list[str]):
    return tree_sum([delayed(rejected_examples, pure=True)(p) for p in paths], merge_examples)


def labels_of(paths: list[str]):
    return tree_sum([delayed(rejected_labels, pure=True)(p) for p in paths], add_counters)


def lengths_of(prefixes: list[str]):
    return tree_sum([delayed(shard_lengths, pure=True)(p) for p in prefixes], add_lengths)


def compute_all(client, lazy: dict) -> dict:
    """Compute every lazy value of `lazy` in one go on `client` (None stays None)."""
    names = [n for n, v in lazy.items() if v is not None]
    results = dict(zip(names, client.gather(client.compute([lazy[n] for n in names]))))
    return {n: results.get(n) for n in lazy}
