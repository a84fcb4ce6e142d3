"""A deterministic, memory-bounded sample of documents for tokenizer training.

Every document gets a key, the first 8 bytes of sha256(`seed:original id`); the sample is
the documents with the smallest keys until their text reaches `max_bytes` (the document
that crosses the limit is included), returned in key order. The choice depends only on the
documents' ids and the seed, not on how they are split into files or how many workers read
them. Copies that the mix stage made of a document (`metadata.mix.epoch > 0`) are skipped,
so repeated data does not count twice. One streaming pass keeps a heap of the current
sample: memory is bounded by `max_bytes` plus one part.

    texts = sample_texts(iter_parquet_documents(paths), seed=0, max_bytes=100 << 20)
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pipeline.parts import read_part


def doc_key(seed: int, doc_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()[:8], "big")


def doc_keys(seed: int, doc_ids: Iterable[str], prefix: str = "") -> np.ndarray:
    """`doc_key(seed, prefix + id)` of every id, as uint64 (one bulk pass, ~40% faster)."""
    head, sha256 = f"{seed}:{prefix}".encode(), hashlib.sha256
    digests = b"".join([sha256(head + doc_id.encode()).digest()[:8] for doc_id in doc_ids])
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def is_repeated_copy(metadata: str | None) -> bool:
    """Whether a row is a copy made by the mix stage (epoch > 0) rather than the original."""
    if not metadata or '"mix"' not in metadata:
        return False
    return json.loads(metadata).get("mix", {}).get("epoch", 0) > 0


def iter_parquet_documents(paths: Iterable[str | Path]) -> Iterator[tuple[str, str]]:
    """(id, text) of every original document in the parquet `paths`, in order."""
    for path in paths:
        table = read_part(path, columns=["id", "text", "metadata"])
        for doc_id, text, metadata in zip(*(table.column(n).to_pylist() for n in ("id", "text", "metadata"))):
            if text and not is_repeated_copy(metadata):
                yield doc_id, text


def sample_texts(documents: Iterable[tuple[str, str]], seed: int, max_bytes: int) -> list[str]:
    """The texts of the smallest-key documents up to `max_bytes`, in key order."""
    heap: list[tuple[int, str, int, str]] = []  # (-key, id, bytes, text): the largest key on top
    total = 0
    for doc_id, text in documents:
        key = doc_key(seed, doc_id)
        if len(heap) and total >= max_bytes and key > -heap[0][0]:
            continue  # the sample is full and this document would come after all of it
        size = len(text.encode("utf-8"))
        heapq.heappush(heap, (-key, doc_id, size, text))
        total += size
        while total - heap[0][2] >= max_bytes:
            total -= heapq.heappop(heap)[2]
    return [text for _, _, _, text in sorted(heap, key=lambda item: (-item[0], item[1]))]
