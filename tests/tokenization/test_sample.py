"""The tokenizer's document sample: seeded, bounded by bytes, independent of file layout,
and blind to the mix stage's repeated copies."""

from __future__ import annotations

from pipeline.record import Document
from tests.tokenization.conftest import write_parts
from tokenization.sample import doc_key, iter_parquet_documents, sample_texts


def docs(n: int) -> list[tuple[str, str]]:
    return [(f"id{i}", f"text {i} " * (1 + i % 7)) for i in range(n)]


def test_smallest_keys_until_the_byte_limit_in_key_order():
    items = docs(200)
    chosen = sample_texts(items, seed=3, max_bytes=1000)
    by_key = sorted(items, key=lambda d: doc_key(3, d[0]))
    sizes = [len(t.encode()) for _, t in by_key]
    n = next(i + 1 for i in range(len(sizes)) if sum(sizes[: i + 1]) >= 1000)  # the crossing one is in
    assert chosen == [t for _, t in by_key[:n]]


def test_independent_of_input_order_and_changes_with_the_seed():
    items = docs(300)
    assert sample_texts(items, 0, 2000) == sample_texts(items[::-1], 0, 2000)
    assert sample_texts(items, 0, 2000) != sample_texts(items, 1, 2000)
    assert sample_texts(items, 0, 10**9) == [t for _, t in sorted(items, key=lambda d: doc_key(0, d[0]))]


def test_parquet_documents_skip_repeated_copies_and_empty_texts(tmp_path):
    rows = [Document(id="a", text="alpha"), Document(id="b", text=""),
            Document(id="a#epoch1", text="alpha", metadata={"mix": {"original_id": "a", "epoch": 1, "rank": 9}}),
            Document(id="c", text="gamma", metadata={"mix": {"original_id": "c", "epoch": 0, "rank": 1}})]
    write_parts(tmp_path, rows, per_part=2)
    assert list(iter_parquet_documents(sorted(tmp_path.glob("part-*.parquet")))) == [("a", "alpha"), ("c", "gamma")]
