"""MinHash signatures and LSH band keys, vectorised with numpy, equal to datasketch's bit for bit.

A document's shingles are its word (or character) n-grams after normalisation, as UTF-8
bytes. Each shingle is hashed with datasketch's `sha1_hash32` (the first 4 bytes of its SHA-1,
little-endian); the signature is, per permutation k, the minimum over shingles of
`a_k * fmix32(h) + b_k mod 2^32` (datasketch >= 2.0's default "affine32" scheme) or of
`((a_k * h + b_k) mod (2^61 - 1)) & (2^32 - 1)` ("legacy"), with `a`, `b` drawn from
`numpy.random.RandomState(seed)` exactly as `datasketch.MinHash(num_perm, seed)` draws them.
So `signatures(...)[i]` equals `MinHash(num_perm, seed).update_batch(shingles_i).hashvalues`.

A document with fewer than `ngram` words is one shingle (its whole normalised text), so short
exact copies still meet; an empty document has no shingles, keeps the all-max signature and
is never a candidate. LSH splits a signature into `bands` x `rows`; documents whose rows agree
in any band become candidates: P(candidate | Jaccard s) = 1 - (1 - s^rows)^bands.

    hasher = MinHasher(num_perm=112, seed=1)
    hashes, counts = shingle_hashes(["a b c d e f"], "word", 5)
    sig = hasher.signatures(hashes, counts)            # (1, 112) uint32
"""

from __future__ import annotations

import functools
import hashlib
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from dedup.index import IndexParams
from dedup.normalize import Normalization, normalize
from dedup.sha1 import sha1_hash32_spans

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint32((1 << 32) - 1)
# Default LSH shape when neither bands/rows nor a threshold is given: FineWeb's and datatrove's
# 14 bands x 8 rows (P(candidate) = 0.92 at Jaccard 0.8, 0.05 at 0.5).
DEFAULT_BANDS, DEFAULT_ROWS = 14, 8
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_SHA1_DIGEST = type(hashlib.sha1()).digest
# Bound the (num_perm x shingles) work matrix of one chunk to ~32 MB.
_CHUNK_ELEMENTS = 8 << 20


class MinHashParams(IndexParams):
    """The MinHash LSH configuration shared by the four MinHash stages (`index`: dedup/index_minhash.py)."""

    ngram: int = Field(5, gt=0, description="shingle size (words or characters)")
    shingle: Literal["word", "char"] = Field("word", description="word or character n-grams")
    num_perm: int = Field(112, gt=0, le=4096, description="permutations (signature length)")
    bands: int | None = Field(None, gt=0, description="LSH bands (with rows; default 14 x 8)")
    rows: int | None = Field(None, gt=0, description="rows per band (with bands)")
    threshold: float | None = Field(None, gt=0, lt=1, description="Jaccard threshold: bands x rows from "
                                    "datasketch's _optimal_param instead of bands/rows")
    seed: int = Field(1, ge=0, lt=2**32, description="permutation seed (datasketch's default is 1)")
    scheme: Literal["affine32", "legacy"] = Field("affine32", description="datasketch permutation scheme")
    # Digits are kept: in financial news the figures are the content. With digits -> 0, distinct
    # earnings tables ("Shr 58 cts vs 57 cts / Net 4,313,000 vs ...") became one 165-document
    # cluster on bench/dedup.py's Reuters benchmark (pairwise precision 0.34; 0.997 with digits).
    normalization: Normalization = Normalization(strip_punctuation=True)

    @model_validator(mode="after")
    def _one_lsh_shape(self) -> MinHashParams:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("bands and rows are set together (or neither, for a threshold or the default)")
        if self.bands is not None and self.threshold is not None:
            raise ValueError("set either threshold or bands/rows, not both")
        bands, rows = self.lsh_shape()
        if bands * rows > self.num_perm:
            raise ValueError(f"bands x rows = {bands * rows} exceeds num_perm = {self.num_perm}")
        return self

    def lsh_shape(self) -> tuple[int, int]:
        """(bands, rows): as given, from the threshold, or the default."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        if self.threshold is not None:
            return optimal_shape(self.threshold, self.num_perm)
        return DEFAULT_BANDS, DEFAULT_ROWS


@functools.lru_cache(maxsize=64)
def optimal_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's choice of (bands, rows) for `threshold`, weighing both errors equally."""
    from datasketch.lsh import _optimal_param

    return tuple(int(x) for x in _optimal_param(threshold, num_perm, 0.5, 0.5))


def s_curve(bands: int, rows: int, step: float = 0.05) -> list[dict[str, float]]:
    """P(a pair becomes a candidate) against its Jaccard similarity, 0..1 by `step`."""
    points = np.round(np.arange(0.0, 1.0 + step / 2, step), 6)
    return [{"jaccard": float(s), "p_candidate": round(float(1 - (1 - s**rows) ** bands), 6)} for s in points]


# -- shingles -------------------------------------------------------------------------------

def _shingles(text: str, kind: str, n: int) -> list[bytes]:
    if kind == "char":
        if len(text) <= n:
            return [text.encode()] if text else []
        return [text[i:i + n].encode() for i in range(len(text) - n + 1)]
    words = text.split()
    if len(words) <= n:
        return [" ".join(words).encode()] if words else []
    return [" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)]


def shingle_hashes(texts: list[str], kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """sha1_hash32 of every shingle of every (normalised) text, concatenated, and the number
    of shingles per text."""
    digests: list[bytes] = []
    counts = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        shingles = _shingles(text, kind, n)
        counts[i] = len(shingles)
        digests.extend(map(_SHA1_DIGEST, map(hashlib.sha1, shingles)))
    # sha1_hash32 = struct.unpack("<I", digest[:4]): every fifth little-endian word of 20-byte digests.
    hashes = np.frombuffer(b"".join(digests), dtype="<u4")[::5].astype(np.uint32)
    return hashes, counts


def word_shingle_spans(values: pa.Array, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(buffer, starts, lengths, per-text counts) of the word n-grams of texts whose words are
    separated by single spaces (normalised with collapse_whitespace): the same shingles, in
    the same order, as `_shingles(text, "word", n)`, located in the Arrow data buffer."""
    values = pc.fill_null(values, "").cast(pa.large_string())
    offsets = np.frombuffer(values.buffers()[1], np.int64)[values.offset:values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2], np.uint8) if values.buffers()[2] else np.zeros(0, np.uint8)
    doc_start, doc_end = offsets[:-1], offsets[1:]
    spaces = np.flatnonzero(data[offsets[0]:offsets[-1]] == 32) + offsets[0]
    has_words = doc_end > doc_start
    # Words are disjoint, so sorted starts and sorted ends pair up.
    word_start = np.sort(np.concatenate([doc_start[has_words], spaces + 1]))
    word_end = np.sort(np.concatenate([spaces, doc_end[has_words]]))
    word_doc = np.searchsorted(doc_start, word_start, side="right") - 1
    words = np.bincount(word_doc, minlength=len(values))
    first = np.arange(max(len(word_start) - n + 1, 0))
    first = first[word_doc[first] == word_doc[first + n - 1]]
    short = np.flatnonzero((words > 0) & (words < n))  # fewer than n words: the whole text
    starts = np.concatenate([word_start[first], doc_start[short]])
    ends = np.concatenate([word_end[first + n - 1], doc_end[short]])
    docs = np.concatenate([word_doc[first], short])
    if len(short):  # n-grams are in text order already; slot the whole-text shingles in
        order = np.argsort(docs, kind="stable")
        starts, ends, docs = starts[order], ends[order], docs[order]
    return data, starts, ends - starts, np.bincount(docs, minlength=len(values))


def document_shingle_hashes(texts: pa.Array, params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes and counts of raw texts under `params` (normalised here). Single-spaced
    word n-grams are hashed in bulk (dedup.sha1); other kinds one by one with hashlib."""
    normed = normalize(texts, params.normalization)
    if params.shingle == "word" and params.normalization.collapse_whitespace:
        data, starts, lengths, counts = word_shingle_spans(normed, params.ngram)
        return sha1_hash32_spans(data, starts, lengths), counts
    return shingle_hashes(normed.to_pylist(), params.shingle, params.ngram)


def hash_sets(texts: pa.Array, params: MinHashParams) -> list[np.ndarray]:
    """Each raw text's set of shingle hashes (sorted, unique): for exact Jaccard."""
    hashes, counts = document_shingle_hashes(texts, params)
    return [np.unique(h) for h in np.split(hashes, np.cumsum(counts)[:-1])]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash sets (1.0 for two empty sets)."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


# -- signatures -----------------------------------------------------------------------------

def fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


class MinHasher:
    """The permutations of `datasketch.MinHash(num_perm, seed, scheme=...)`, applied in bulk."""

    def __init__(self, num_perm: int, seed: int = 1, scheme: str = "affine32"):
        self.num_perm, self.seed, self.scheme = num_perm, seed, scheme
        gen = np.random.RandomState(seed)
        if scheme == "legacy":
            # datasketch draws (a, b) pairs in turn, a in [1, p), b in [0, p).
            pairs = [(gen.randint(1, MERSENNE_PRIME, dtype=np.uint64),
                      gen.randint(0, MERSENNE_PRIME, dtype=np.uint64)) for _ in range(num_perm)]
            self.a, self.b = np.array(pairs, dtype=np.uint64).T.copy()
        elif scheme == "affine32":
            self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        else:
            raise ValueError(f"scheme must be affine32 or legacy, got {scheme!r}")

    def _permuted(self, hashes: np.ndarray) -> np.ndarray:
        """(num_perm, len(hashes)) permuted hash values, uint32."""
        if self.scheme == "legacy":
            # uint64 arithmetic wraps exactly as datasketch's does before the modulo.
            phv = self.a[:, None] * hashes.astype(np.uint64)[None, :]
            phv += self.b[:, None]
            return (phv % MERSENNE_PRIME & np.uint64(MAX_HASH)).astype(np.uint32)
        phv = self.a[:, None] * fmix32(hashes)[None, :]
        phv += self.b[:, None]
        return phv

    def signatures(self, hashes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """(len(counts), num_perm) uint32: per document, the min of each permutation over its
        shingles; documents without shingles keep the all-max value datasketch starts from."""
        out = np.full((len(counts), self.num_perm), MAX_HASH, dtype=np.uint32)
        starts = np.concatenate([[0], np.cumsum(counts)])
        per_chunk = max(1, _CHUNK_ELEMENTS // self.num_perm)
        doc = 0
        while doc < len(counts):
            end = int(np.searchsorted(starts, starts[doc] + per_chunk, side="right")) - 1
            end = max(end, doc + 1)
            self._fill(out, hashes, starts, doc, min(end, len(counts)))
            doc = end
        return out

    def _fill(self, out: np.ndarray, hashes: np.ndarray, starts: np.ndarray, first: int, last: int) -> None:
        docs = np.arange(first, last)
        docs = docs[starts[docs + 1] > starts[docs]]
        if not len(docs):
            return
        lo, hi = starts[docs[0]], starts[docs[-1] + 1]
        phv = self._permuted(hashes[lo:hi])
        out[docs] = np.minimum.reduceat(phv, starts[docs] - lo, axis=1).T


@functools.lru_cache(maxsize=8)
def get_hasher(num_perm: int, seed: int, scheme: str) -> MinHasher:
    """One hasher per worker and configuration (the permutations are drawn once)."""
    return MinHasher(num_perm, seed, scheme)


# -- LSH band keys --------------------------------------------------------------------------

def splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: a 64-bit hash of each band's `rows` values and the band's index.
    Two documents share a key iff their band rows agree (up to a 2^-64 hash collision)."""
    n = len(signatures)
    grid = signatures[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    key = np.broadcast_to(splitmix64(np.arange(bands, dtype=np.uint64)), (n, bands)).copy()
    for j in range(rows):
        key = splitmix64(key ^ grid[:, :, j])
    return key
