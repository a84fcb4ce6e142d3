"""Representative choice per duplicate group, the audit counts, and applying decisions to a part."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from dedup.decide import GROUP_META, apply_part, decide_partition, summarize_partition, write_partition_decisions
from pipeline.io import write_parquet
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows of (group, node, id, quality_score, length, source, domain)."""
    return pd.DataFrame(rows, columns=list(GROUP_META.columns)).astype(GROUP_META.dtypes.to_dict())


def test_highest_quality_then_longest_then_smallest_id_is_kept():
    df = frame([
        (1, 0, "b", 0.5, 10, "s", None), (1, 1, "a", 0.9, 5, "s", None), (1, 2, "c", np.nan, 99, "t", None),
        (2, 3, "z", None, 10, "s", "fin"), (2, 4, "y", None, 12, "s", "fin"),
        (3, 5, "q", None, 10, "s", None), (3, 6, "p", None, 10, "s", None),
        (4, 7, "alone", 1.0, 3, "s", None),
    ])
    out = decide_partition(df, ("quality_score", "length", "id")).set_index("node")
    assert 7 not in out.index  # a group of one is no duplicate group
    assert not out.loc[1, "removed"] and out.loc[[0, 2], "removed"].all()  # 0.9 beats 0.5 and null
    assert (out.loc[[0, 2], "duplicate_of"] == "a").all()
    assert not out.loc[4, "removed"] and out.loc[3, "duplicate_of"] == "y"  # longer wins
    assert not out.loc[6, "removed"] and out.loc[5, "duplicate_of"] == "p"  # smaller id wins
    assert out.loc[0, "cluster_size"] == 3 and out.loc[3, "cluster_size"] == 2


def test_ranking_is_configurable():
    df = frame([(1, 0, "b", 0.1, 10, "s", None), (1, 1, "a", 0.9, 50, "s", None)])
    first_read = decide_partition(df, ("order",)).set_index("node")
    assert not first_read.loc[0, "removed"] and first_read.loc[1, "duplicate_of"] == "b"
    by_id = decide_partition(df, ("id",)).set_index("node")
    assert not by_id.loc[1, "removed"]


def test_summary_counts_groups_and_removals_by_source_and_domain():
    df = frame([(1, 0, "a", None, 5, "web", None), (1, 1, "b", None, 4, "news", "fin"),
                (1, 2, "c", None, 3, "news", "fin"), (2, 3, "d", None, 5, "web", None),
                (2, 4, "e", None, 4, "web", None)])
    summary = summarize_partition(decide_partition(df, ("length",)))
    counts = {(k, key): n for k, key, n in summary.itertuples(index=False)}
    assert counts[("cluster_size", "3")] == 1 and counts[("cluster_size", "2")] == 1
    assert counts[("removed_by_source", "news")] == 2 and counts[("removed_by_source", "web")] == 1
    assert counts[("removed_by_domain", "fin")] == 2 and counts[("removed_by_domain", "(none)")] == 1


def test_apply_part_moves_removed_rows_to_rejected_with_reason_and_representative(tmp_path):
    docs = [Document(id=f"d{i}", text=f"text {i}", source="s", metadata={"k": i}) for i in range(5)]
    write_parquet(documents_to_table(docs, DOCUMENT_SCHEMA), tmp_path / "in" / "part-00000.parquet")
    decided = decide_partition(frame([(9, 1, "d1", None, 6, "s", None), (9, 3, "d3", None, 6, "s", None),
                                      (9, 4, "d4", None, 6, "s", None)]), ("id",))
    write_partition_decisions(decided[decided["removed"]], ("part-00000.parquet",), str(tmp_path / "dec"))
    stats = apply_part("part-00000.parquet", str(tmp_path / "in"), str(tmp_path / "dec"), str(tmp_path / "out"),
                       "exact_dedup", "exact_dedup.duplicate")
    kept = pq.read_table(tmp_path / "out" / "part-00000.parquet").to_pylist()
    rejected = pq.read_table(tmp_path / "out" / "rejected" / "part-00000.parquet").to_pylist()
    assert [r["id"] for r in kept] == ["d0", "d1", "d2"]
    assert [(r["id"], r["stage"], r["reason"]) for r in rejected] == [
        ("d3", "exact_dedup", "exact_dedup.duplicate"), ("d4", "exact_dedup", "exact_dedup.duplicate")]
    assert json.loads(rejected[0]["metadata"]) == {"k": 3, "duplicate_of": "d1", "duplicate_cluster_size": 3}
    assert stats["docs_in"] == 5 and stats["docs_out"] == 3 and stats["rejected"] == {"exact_dedup.duplicate": 2}
    assert (tmp_path / "out" / "_stats" / "part-00000.parquet.json").exists()
