"""`IndexedWriter.add_documents` (several documents in one write) matches one-by-one writes
and megatron-core reads the result."""

from __future__ import annotations

import numpy as np
import pytest

from tokenization.indexed import IndexedDataset, IndexedWriter


def test_add_documents_equals_add_document(tmp_path):
    docs = [[5, 6, 2], [2], [9, 9, 9, 9, 2]]
    with IndexedWriter(tmp_path / "one", dtype=np.uint16) as w:
        for d in docs:
            w.add_document(d)
    with IndexedWriter(tmp_path / "many", dtype=np.uint16) as w:
        w.add_documents(np.asarray([5, 6, 2]), [3])
        w.add_documents(np.asarray([], dtype=np.int64), [])
        w.add_documents(np.asarray([2, 9, 9, 9, 9, 2]), [1, 5])
    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"many{suffix}").read_bytes()
    ds = IndexedDataset(tmp_path / "many")
    assert [ds[i].tolist() for i in range(len(ds))] == docs
    assert ds.get(2, offset=1, length=2).tolist() == [9, 9] and ds.token_range(2, 5).tolist() == [2, 2, 9]
    assert ds.read_range(2, 5).tolist() == [2, 2, 9] and ds.read_range(0, 0).tolist() == []


def test_add_documents_checks_lengths(tmp_path):
    with pytest.raises(ValueError, match="lengths add up to 4 tokens, got 3"):
        with IndexedWriter(tmp_path / "x") as w:
            w.add_documents(np.asarray([1, 2, 3]), [2, 2])
