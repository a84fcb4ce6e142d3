"""Views of parts (pipeline/parts.py): a global stage that only removes rows writes which rows
it dropped, and every reader sees the rows a copy would hold, in the same order."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from pipeline.io import read_json, table_bytes, write_parquet
from pipeline.parts import (
    VIEWS,
    commit_removal,
    part_batches,
    part_cost,
    part_rows,
    part_schema,
    part_sizes,
    pass_view,
    read_part,
    view_of,
)
from pipeline.record import with_reason


def _table(n: int) -> pa.Table:
    return pa.table({"id": [f"d{i:03d}" for i in range(n)], "text": [f"text {i} " * (i + 1) for i in range(n)]})


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "run" / "03-pii" / "part-00000.parquet"
    write_parquet(_table(20), path)
    return path


def _remove(in_path, out_dir, rows: list[int], views: bool) -> dict:
    table = read_part(str(in_path))
    dropped = np.zeros(table.num_rows, dtype=bool)
    dropped[rows] = True
    rejected = with_reason(table.filter(pa.array(dropped)), "test", "test.removed")
    return commit_removal(str(in_path), str(out_dir), "part-00000.parquet", table, dropped, rejected, views)


def test_a_view_reads_like_the_copy_it_stands_for(source, tmp_path):
    run = tmp_path / "run"
    copy_stats = _remove(source, run / "04-copy", [1, 3, 19], views=False)
    view_stats = _remove(source, run / "04-view", [1, 3, 19], views=True)
    assert copy_stats == view_stats and view_stats["docs_out"] == 17
    copy, view = run / "04-copy" / "part-00000.parquet", run / "04-view" / "part-00000.parquet"
    assert not view.exists() and view_of(str(copy)) is None
    expected = _table(20).take([i for i in range(20) if i not in (1, 3, 19)])
    assert read_part(str(view)) == read_part(str(copy)) == expected
    assert read_part(str(view), columns=["id"]) == read_part(str(copy), columns=["id"])
    batches = pa.Table.from_batches(list(part_batches(str(view), batch_size=3)))
    assert batches == read_part(str(view))
    assert part_rows(str(view)) == 17 and part_sizes(str(view)) == (17, table_bytes(read_part(str(copy))))
    assert part_schema(str(view)) == part_schema(str(copy))
    assert 0 < part_cost(str(view)) < source.stat().st_size
    # the commit records give the same rows and bytes for a copy and a view
    records = [read_json(run / s / "_stats" / "part-00000.parquet.json") for s in ("04-copy", "04-view")]
    assert [{k: r[k] for k in ("rows", "bytes", "docs_out")} for r in records] == [
        {"rows": 17, "bytes": part_sizes(str(view))[1], "docs_out": 17}] * 2
    assert records[1]["files"] == sorted([f"{VIEWS}/part-00000.drop.parquet", f"{VIEWS}/part-00000.parquet.json",
                                          "rejected/part-00000.parquet"])
    spec = json.loads((run / "04-view" / VIEWS / "part-00000.parquet.json").read_text())
    assert spec["source"] == "03-pii/part-00000.parquet" and spec["drop"] == "04-view/_views/part-00000.drop.parquet"


def test_a_view_of_a_view_is_flattened_onto_the_written_part(source, tmp_path):
    run = tmp_path / "run"
    _remove(source, run / "04-a", [0, 5], views=True)
    _remove(run / "04-a" / "part-00000.parquet", run / "05-b", [0, 4], views=True)  # rows 1 and 6 of the source
    spec = json.loads((run / "05-b" / VIEWS / "part-00000.parquet.json").read_text())
    assert spec["source"] == "03-pii/part-00000.parquet" and spec["source_rows"] == 20 and spec["rows"] == 16
    expected = _table(20).take([i for i in range(20) if i not in (0, 1, 5, 6)])
    assert read_part(str(run / "05-b" / "part-00000.parquet")) == expected
    # a stage passing its input through copies the spec: it still points at the same files
    assert pass_view(str(run / "05-b" / "part-00000.parquet"), str(run / "06-c"), "part-00000.parquet")
    assert read_part(str(run / "06-c" / "part-00000.parquet")) == expected
    assert not pass_view(str(source), str(run / "06-c"), "part-00001.parquet")


def test_nothing_removed_writes_no_drop_file_and_a_missing_part_names_itself(source, tmp_path):
    run = tmp_path / "run"
    _remove(source, run / "04-a", [], views=True)
    assert read_part(str(run / "04-a" / "part-00000.parquet")) == _table(20)
    assert sorted(p.name for p in (run / "04-a" / VIEWS).iterdir()) == ["part-00000.parquet.json"]
    with pytest.raises(FileNotFoundError, match=r"part-00009\.parquet: no such part"):
        read_part(str(run / "04-a" / "part-00009.parquet"))
