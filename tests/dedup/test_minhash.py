"""MinHash signatures equal datasketch's bit for bit (random and real documents, both
permutation schemes); shingles, band keys, the LSH shape and its validation."""

from __future__ import annotations

import gzip
import hashlib
import json
import random

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from pydantic import ValidationError

from dedup.minhash import (
    MAX_HASH,
    MinHasher,
    MinHashParams,
    _shingles,
    band_keys,
    document_shingle_hashes,
    hash_sets,
    jaccard,
    s_curve,
    shingle_hashes,
)
from dedup.normalize import Normalization, normalize
from dedup.sha1 import sha1_hash32_spans
from tests.conftest import shared_path

WORDS = ["alpha", "beta", "gamma", "delta", "épsilon", "ζeta", "東京", "x", "profit", "loss", "12.5", "—"]


def random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = ["", "one", "two words", "a b c d", "a b c d e", "a b c d e f"]
    for _ in range(n):
        texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 80))))
    return texts


def reuters_texts(n: int) -> list[str]:
    path = shared_path("financial_reuters21578", "reuters21578.jsonl.gz")
    texts = []
    with gzip.open(path, "rt") as f:
        for line in f:
            body = json.loads(line).get("body")
            if body:
                texts.append(body)
            if len(texts) == n:
                break
    return normalize(pa.array(texts), MinHashParams().normalization).to_pylist()


def datasketch_signature(shingles: list[bytes], num_perm: int, seed: int, scheme: str) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
    m.update_batch(shingles)
    return m.hashvalues.astype(np.uint64)


def assert_equal_to_datasketch(texts: list[str], kind: str, n: int, num_perm: int, seed: int, scheme: str) -> None:
    hashes, counts = shingle_hashes(texts, kind, n)
    ours = MinHasher(num_perm, seed, scheme).signatures(hashes, counts)
    for i, text in enumerate(texts):
        expected = datasketch_signature(_shingles(text, kind, n), num_perm, seed, scheme)
        assert np.array_equal(ours[i].astype(np.uint64), expected), (scheme, num_perm, seed, i, text[:60])


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("num_perm,seed", [(112, 1), (128, 42), (7, 0)])
def test_signatures_equal_datasketch_on_random_documents(scheme, num_perm, seed):
    assert_equal_to_datasketch(random_texts(60, seed), "word", 5, num_perm, seed, scheme)
    assert_equal_to_datasketch(random_texts(20, seed + 1), "char", 4, num_perm, seed, scheme)


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_equal_datasketch_on_real_documents(scheme):
    texts = reuters_texts(150)
    assert_equal_to_datasketch(texts, "word", 5, 112, 1, scheme)
    # the stage's path: bulk SHA-1 over the Arrow buffer of the normalised texts
    ours = MinHasher(112, 1, scheme).signatures(*document_shingle_hashes(pa.array(texts), MinHashParams()))
    for i in range(0, 150, 10):
        assert np.array_equal(ours[i].astype(np.uint64), datasketch_signature(_shingles(texts[i], "word", 5), 112, 1,
                                                                               scheme))


def test_signatures_in_chunks_equal_one_pass(monkeypatch):
    texts = reuters_texts(40)
    hashes, counts = shingle_hashes(texts, "word", 5)
    whole = MinHasher(64).signatures(hashes, counts)
    monkeypatch.setattr("dedup.minhash._CHUNK_ELEMENTS", 64 * 7)  # force many tiny chunks
    assert np.array_equal(MinHasher(64).signatures(hashes, counts), whole)


def test_bulk_sha1_equals_hashlib():
    rng = np.random.default_rng(5)
    lengths = np.concatenate([np.arange(0, 300), rng.integers(0, 600, 500)])  # 1 to 10 blocks
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    buffer = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    expected = [int.from_bytes(hashlib.sha1(buffer[s:s + n].tobytes()).digest()[:4], "little")
                for s, n in zip(starts, lengths)]
    assert sha1_hash32_spans(buffer, starts, lengths).tolist() == expected


@pytest.mark.parametrize("ngram", [1, 3, 5, 9])
def test_bulk_word_shingles_equal_one_by_one(ngram):
    texts = random_texts(200, ngram) + [None, "  padded  text  ", "x" * 400 + " y", "a\u2028b c\x1cd e\x85f g\xa0h"]
    params = MinHashParams(ngram=ngram)
    bulk = document_shingle_hashes(pa.array(texts), params)
    one_by_one = shingle_hashes(normalize(pa.array(texts), params.normalization).to_pylist(), "word", ngram)
    assert np.array_equal(bulk[0], one_by_one[0]) and np.array_equal(bulk[1], one_by_one[1])


def test_short_and_empty_documents():
    assert _shingles("a b c", "word", 5) == [b"a b c"]  # shorter than n: one shingle, the whole text
    assert _shingles("", "word", 5) == []
    assert _shingles("a  b\tc d e f", "word", 5) == [b"a b c d e", b"b c d e f"]
    hashes, counts = shingle_hashes(["", "a b c"], "word", 5)
    sig = MinHasher(16).signatures(hashes, counts)
    assert counts.tolist() == [0, 1]
    assert (sig[0] == MAX_HASH).all() and not (sig[1] == MAX_HASH).all()


def test_band_keys_agree_exactly_when_band_rows_agree():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, (3, 24), dtype=np.uint64).astype(np.uint32)
    sig[1, 8:16] = sig[0, 8:16]  # doc 1 shares band 1 with doc 0
    keys = band_keys(sig, bands=3, rows=8)
    assert keys.shape == (3, 3)
    assert keys[0, 1] == keys[1, 1]
    assert keys[0, 0] != keys[1, 0] and keys[0, 2] != keys[1, 2]
    # the same rows in different bands give different keys
    sig[2, 0:8] = sig[0, 8:16]
    assert band_keys(sig, 3, 8)[2, 0] != keys[0, 1]


def test_exact_jaccard_of_hash_sets():
    a, b = hash_sets(pa.array(["a b c d e f g", "A b, c d e f h"]), MinHashParams())
    assert jaccard(a, b) == pytest.approx(2 / 4)
    assert jaccard(a, a) == 1.0


def test_lsh_shape_default_bands_rows_and_threshold():
    assert MinHashParams().lsh_shape() == (14, 8)
    assert MinHashParams(bands=20, rows=5).lsh_shape() == (20, 5)
    assert MinHashParams(threshold=0.8, num_perm=128).lsh_shape() == _optimal_param(0.8, 128, 0.5, 0.5)


@pytest.mark.parametrize("params,message", [
    ({"bands": 10}, "bands and rows are set together"),
    ({"threshold": 0.8, "bands": 10, "rows": 10}, "either threshold or bands/rows"),
    ({"bands": 20, "rows": 10, "num_perm": 128}, "exceeds num_perm"),
    ({"ngram": 0}, "greater than 0"),
])
def test_invalid_minhash_params_name_the_problem(params, message):
    with pytest.raises(ValidationError, match=message):
        MinHashParams(**params)


def test_s_curve_matches_the_banding_formula():
    curve = s_curve(14, 8)
    assert len(curve) == 21 and curve[0] == {"jaccard": 0.0, "p_candidate": 0.0}
    at = {p["jaccard"]: p["p_candidate"] for p in curve}
    assert at[0.8] == pytest.approx(1 - (1 - 0.8**8) ** 14, abs=1e-6)
    assert at[1.0] == 1.0


def test_normalisation_options():
    text = pa.array(["Profit  ROSE 12.5 pct!\u00a0 Ok\n"])
    assert normalize(text, Normalization()).to_pylist() == ["profit rose 12.5 pct! ok"]
    full = Normalization(strip_punctuation=True, digits_to_zero=True)
    assert normalize(text, full).to_pylist() == ["profit rose 0 0 pct ok"]
    assert normalize(text, Normalization(lowercase=False, collapse_whitespace=False)).to_pylist() == \
        ["Profit  ROSE 12.5 pct!\u00a0 Ok\n"]
    # punctuation and whitespace in one regex pass == one after the other
    texts = pa.array(random_texts(100, 9) + [" a ,, b\t-- c \u2028 d. "])
    one_pass = normalize(texts, Normalization(strip_punctuation=True))
    punct_only = normalize(texts, Normalization(strip_punctuation=True, collapse_whitespace=False))
    assert one_pass.equals(normalize(punct_only, Normalization(lowercase=False)))
