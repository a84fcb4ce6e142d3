"""Addable statistics of a set of documents, computed one Arrow batch at a time.

`DocStats` is what `thresher stats` measures on a set of documents (a stage's output, a
Parquet/JSONL folder). Each Dask task fills one from its file's batches; the tasks' objects
are added together (like `pipeline.stats.StageStats`), so memory stays bounded by one batch
plus fixed-size summaries, whatever the number of documents:

- exact: documents, UTF-8 bytes, characters, words, tokens (sums, min, max), histograms of
  lengths over fixed log-spaced bins and of scores over fixed bins in [0, 1], and documents /
  bytes / tokens per source, domain and language;
- estimates, named as such in `stats.json`: length quantiles from a t-digest (fastdigest) and
  distinct texts and URL hosts from HyperLogLog++ registers (datasketch's estimator, p=14,
  ~0.8% standard error);
- a deterministic sample of documents per domain: the `k` with the smallest hash of their id,
  which is the same whichever way the files are split into tasks.

    stats = DocStats.empty(); stats.add(table, tokens); total = a + b; total.to_dict()
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from datasketch import HyperLogLogPlusPlus
from fastdigest import TDigest

# 0 and 1, then ~26% wider bins up to 1e9 (10 per decade): exact counts, readable on log axes.
LENGTH_EDGES = np.concatenate([[0.0], np.unique(np.round(np.logspace(0, 9, 91)))])
SCORE_EDGES = np.round(np.linspace(0.0, 1.0, 51), 4)
LENGTH_METRICS = ("chars", "words", "tokens")
CATEGORY_COLUMNS = ("source", "domain", "language")
SCORE_COLUMNS = ("quality_score", "domain_score", "language_score")
QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
MAX_CATEGORIES = 10_000  # beyond this many values of a label column, the rest count as "(other)"
HLL_P = 14
NONE = "(none)"
SNIPPET_CHARS = 300
_HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(?P<host>[^/:?#]+)"


def snippet(text: str | None, limit: int = SNIPPET_CHARS) -> str:
    """The first `limit` characters of `text`, whitespace collapsed (shown in the report)."""
    flat = re.sub(r"\s+", " ", text or "").strip()
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "…"


def stable_hash(values: pa.Array | list) -> np.ndarray:
    """64-bit hashes of strings, identical on every run and machine (pandas' SipHash with
    its fixed key); nulls hash as the empty string."""
    array = pa.array(values, pa.string()) if isinstance(values, list) else values
    return pd.util.hash_array(array.fill_null("").to_numpy(zero_copy_only=False))


def word_counts(text: pa.ChunkedArray) -> np.ndarray:
    """Words per row as Python's `str.split()` counts them (runs of non-whitespace): Arrow's
    split yields empty strings between adjacent spaces, which are not counted."""
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    pieces = pc.utf8_split_whitespace(text)
    flat = pc.list_flatten(pieces)
    words = pc.not_equal(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)
    return np.bincount(parents[words], minlength=len(text)).astype(np.int64)


def hll_registers(hashes: np.ndarray, p: int = HLL_P) -> np.ndarray:
    """HyperLogLog registers of 64-bit `hashes`, exactly as datasketch's `update` sets them
    (index = low p bits, rank = leading zeros of the rest + 1), but vectorised."""
    reg = np.zeros(1 << p, dtype=np.int8)
    if not len(hashes):
        return reg
    hashes = hashes.astype(np.uint64)
    index = (hashes & np.uint64((1 << p) - 1)).astype(np.int64)
    rest = hashes >> np.uint64(p)
    bit_length = np.zeros(len(rest), dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):  # exact bit length of a uint64, by halving
        big = rest >= np.uint64(1 << shift)
        bit_length[big] += shift
        rest = np.where(big, rest >> np.uint64(shift), rest)
    bit_length += (rest > 0).astype(np.int64)
    np.maximum.at(reg, index, (64 - p - bit_length + 1).astype(np.int8))
    return reg


def hll_count(reg: np.ndarray) -> int:
    return round(HyperLogLogPlusPlus(reg=reg.copy()).count()) if reg.any() else 0


@dataclasses.dataclass
class Lengths:
    """One length metric: exact histogram, sum, min, max; t-digest for quantiles."""

    counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(LENGTH_EDGES), np.int64))
    total: int = 0
    low: int | None = None
    high: int | None = None
    digest: TDigest = dataclasses.field(default_factory=TDigest)

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        bins = np.searchsorted(LENGTH_EDGES, values, side="right") - 1  # last bin: >= 1e9
        self.counts += np.bincount(bins, minlength=len(LENGTH_EDGES))
        self.total += int(values.sum())
        lo, hi = int(values.min()), int(values.max())
        self.low = lo if self.low is None else min(self.low, lo)
        self.high = hi if self.high is None else max(self.high, hi)
        self.digest.batch_update(values.astype(np.float64))

    def __add__(self, other: Lengths) -> Lengths:
        both = [x for x in (self.low, other.low) if x is not None]
        tops = [x for x in (self.high, other.high) if x is not None]
        return Lengths(self.counts + other.counts, self.total + other.total, min(both, default=None),
                       max(tops, default=None), self.digest.merge(other.digest))

    def to_dict(self, documents: int) -> dict:
        empty = self.digest.n_values == 0
        return {"sum": self.total, "mean": round(self.total / documents, 3) if documents else None,
                "min": self.low, "max": self.high,
                "quantiles": {f"p{round(q * 100)}": None if empty else round(self.digest.quantile(q), 1)
                              for q in QUANTILES},
                "histogram": histogram(LENGTH_EDGES, self.counts)}


def histogram(edges: np.ndarray, counts: np.ndarray) -> dict:
    """Non-empty bins only: `[lo, hi)` edges (hi null for the open last bin) and counts."""
    keep = np.flatnonzero(counts)
    his = [float(edges[i + 1]) if i + 1 < len(edges) else None for i in keep]
    return {"lo": [float(edges[i]) for i in keep], "hi": his, "count": [int(counts[i]) for i in keep]}


@dataclasses.dataclass
class DocStats:
    documents: int = 0
    bytes: int = 0
    no_text: int = 0
    unreadable: int = 0  # JSONL records that are not JSON or have no text field
    lengths: dict[str, Lengths] = dataclasses.field(default_factory=lambda: {m: Lengths() for m in LENGTH_METRICS})
    # column -> value -> [documents, bytes, tokens]
    categories: dict[str, dict[str, list[int]]] = dataclasses.field(
        default_factory=lambda: {c: {} for c in CATEGORY_COLUMNS})
    # column -> (counts over SCORE_EDGES bins, nulls, sum of scores)
    scores: dict[str, list] = dataclasses.field(default_factory=dict)
    texts_hll: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1 << HLL_P, np.int8))
    hosts_hll: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1 << HLL_P, np.int8))
    with_url: int = 0
    # domain -> up to `samples` (hash, id, url, snippet), smallest hashes
    samples: dict[str, list] = dataclasses.field(default_factory=dict)
    sample_size: int = 0

    def add(self, table: pa.Table, tokens: np.ndarray) -> None:
        """Account for one batch: `table` has `text` (+ any of id, url and the label and
        score columns); `tokens` holds each row's token count."""
        text = pc.cast(table.column("text"), pa.string())
        n_bytes = pc.binary_length(text).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        chars = pc.utf8_length(text).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        words = word_counts(text)
        tokens = np.asarray(tokens, dtype=np.int64)
        self.documents += table.num_rows
        self.bytes += int(n_bytes.sum())
        self.no_text += text.null_count
        for name, values in zip(LENGTH_METRICS, (chars, words, tokens)):
            self.lengths[name].add(values)
        self._add_categories(table, n_bytes, tokens)
        self._add_scores(table)
        np.maximum(self.texts_hll, hll_registers(stable_hash(text.combine_chunks())), out=self.texts_hll)
        if "url" in table.column_names:
            self._add_hosts(table.column("url"))
        if self.sample_size:
            self._add_samples(table)

    def _add_categories(self, table: pa.Table, n_bytes: np.ndarray, tokens: np.ndarray) -> None:
        for column in CATEGORY_COLUMNS:
            keys = table.column(column) if column in table.column_names else pa.nulls(table.num_rows, pa.string())
            frame = pa.table({"key": pc.cast(keys, pa.string()).fill_null(NONE), "bytes": n_bytes, "tokens": tokens})
            grouped = frame.group_by("key").aggregate([("bytes", "count"), ("bytes", "sum"), ("tokens", "sum")])
            counts = self.categories[column]
            for key, docs, b, t in zip(*(grouped.column(c).to_pylist() for c in
                                         ("key", "bytes_count", "bytes_sum", "tokens_sum"))):
                entry = counts.setdefault(key, [0, 0, 0])
                entry[0], entry[1], entry[2] = entry[0] + docs, entry[1] + b, entry[2] + t
            self.categories[column] = cap_categories(counts)

    def _add_scores(self, table: pa.Table) -> None:
        for column in SCORE_COLUMNS:
            if column not in table.column_names:
                continue
            values = pc.cast(table.column(column), pa.float64()).to_numpy(zero_copy_only=False)
            values = values[~np.isnan(values)]
            clipped = np.clip(values, 0.0, 1.0)
            bins = np.minimum(np.searchsorted(SCORE_EDGES, clipped, side="right") - 1, len(SCORE_EDGES) - 2)
            entry = self.scores.setdefault(column, [np.zeros(len(SCORE_EDGES) - 1, np.int64), 0, 0.0])
            entry[0] = entry[0] + np.bincount(bins, minlength=len(SCORE_EDGES) - 1)
            entry[1] += table.num_rows - len(values)
            entry[2] += float(values.sum())

    def _add_hosts(self, urls: pa.ChunkedArray) -> None:
        hosts = pc.utf8_lower(pc.struct_field(pc.extract_regex(pc.cast(urls, pa.string()), _HOST), "host"))
        present = hosts.drop_null()
        self.with_url += len(present)
        np.maximum(self.hosts_hll, hll_registers(stable_hash(present.combine_chunks())), out=self.hosts_hll)

    def _add_samples(self, table: pa.Table) -> None:
        n = table.num_rows
        ids = table.column("id").to_pylist() if "id" in table.column_names else [None] * n
        ids = [i if i is not None else f"row-{self.documents - n + r}" for r, i in enumerate(ids)]
        domains = table.column("domain").to_pylist() if "domain" in table.column_names else [None] * n
        urls = table.column("url").to_pylist() if "url" in table.column_names else [None] * n
        hashes = stable_hash(ids)
        best: dict[str, list[int]] = {}
        for i in np.argsort(hashes, kind="stable").tolist():
            rows = best.setdefault(domains[i] or NONE, [])
            if len(rows) < self.sample_size:
                rows.append(i)
        text = table.column("text")
        for domain, rows in best.items():
            new = [(int(hashes[i]), ids[i], urls[i], snippet(text[i].as_py())) for i in rows]
            merged = set(self.samples.get(domain, [])) | set(new)
            self.samples[domain] = sorted(merged, key=lambda s: (s[0], s[1]))[: self.sample_size]

    def __add__(self, other: DocStats) -> DocStats:
        out = DocStats(self.documents + other.documents, self.bytes + other.bytes, self.no_text + other.no_text,
                       self.unreadable + other.unreadable)
        out.lengths = {m: self.lengths[m] + other.lengths[m] for m in LENGTH_METRICS}
        for column in CATEGORY_COLUMNS:
            merged = {k: list(v) for k, v in self.categories[column].items()}
            for key, values in other.categories[column].items():
                merged[key] = [a + b for a, b in zip(merged.get(key, [0, 0, 0]), values)]
            out.categories[column] = cap_categories(merged)
        for column in sorted(set(self.scores) | set(other.scores)):
            a = self.scores.get(column, [0, 0, 0.0])
            b = other.scores.get(column, [0, 0, 0.0])
            out.scores[column] = [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
        out.texts_hll = np.maximum(self.texts_hll, other.texts_hll)
        out.hosts_hll = np.maximum(self.hosts_hll, other.hosts_hll)
        out.with_url = self.with_url + other.with_url
        out.sample_size = max(self.sample_size, other.sample_size)
        for domain in sorted(set(self.samples) | set(other.samples)):
            both = set(self.samples.get(domain, [])) | set(other.samples.get(domain, []))
            out.samples[domain] = sorted(both, key=lambda s: (s[0], s[1]))[: out.sample_size]
        return out

    def __radd__(self, other: object) -> DocStats:
        return self if other == 0 else NotImplemented

    def to_dict(self) -> dict:
        tokens = self.lengths["tokens"].total
        return {
            "documents": self.documents,
            "bytes": self.bytes,
            "tokens": tokens,
            "documents_without_text": self.no_text,
            "unreadable_records": self.unreadable,
            "lengths": {m: self.lengths[m].to_dict(self.documents) for m in LENGTH_METRICS},
            "categories": {c: categories_dict(self.categories[c]) for c in CATEGORY_COLUMNS},
            "scores": {c: score_dict(*self.scores[c]) for c in sorted(self.scores) if np.sum(self.scores[c][0])},
            "distinct_texts_estimate": hll_count(self.texts_hll),
            "documents_with_url": self.with_url,
            "distinct_url_hosts_estimate": hll_count(self.hosts_hll),
            "samples": {d: [{"id": s[1], "url": s[2], "snippet": s[3]} for s in self.samples[d]]
                        for d in sorted(self.samples)},
        }


def cap_categories(counts: dict[str, list[int]]) -> dict[str, list[int]]:
    """At most MAX_CATEGORIES values: the rest (fewest documents) are added into "(other)"."""
    if len(counts) <= MAX_CATEGORIES:
        return counts
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
    kept = dict(ranked[: MAX_CATEGORIES - 1])
    other = kept.pop("(other)", [0, 0, 0])
    for _, values in ranked[MAX_CATEGORIES - 1:]:
        other = [a + b for a, b in zip(other, values)]
    kept["(other)"] = other
    return kept


def categories_dict(counts: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {k: {"documents": v[0], "bytes": v[1], "tokens": v[2]} for k, v in ranked}


def score_dict(counts: np.ndarray, missing: int, total: float) -> dict:
    scored = int(np.sum(counts))
    return {"scored": scored, "missing": int(missing), "mean": round(total / scored, 6) if scored else None,
            "histogram": histogram(SCORE_EDGES, np.asarray(counts))}


def estimate_tokens(n_bytes: np.ndarray, bytes_per_token: float) -> np.ndarray:
    """The token estimate when no tokenizer is given: ceil(UTF-8 bytes / bytes_per_token),
    the same rule as the mix stage's."""
    return np.ceil(np.asarray(n_bytes, dtype=np.float64) / bytes_per_token).astype(np.int64)
