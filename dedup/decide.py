"""Shared by exact and MinHash dedup: pick one representative per duplicate group on Dask,
write the removals per input part, and apply them part by part (resumably).

A *group* is a set of documents found to be duplicates (same normalised-text hash, or one
connected component of the LSH candidate graph). The rows of every group meet in one
partition (a shuffle on `group`), are ranked by the configured `representative` order, and
all but the first are removed. Removals are shuffled back by input part and written as
`decisions/<part>.parquet` (row, duplicate_of, cluster_size); `apply_part` then copies each
input part to the output without its removed rows and puts those in `rejected/` with the
reason and, in their metadata, the id of the kept representative and the group's size.

Documents are addressed by `node = part_index << 32 | row` (part_index in the sorted list of
input parts), so every decision is independent of partitioning and worker count.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dedup.index import write_key_entries
from pipeline import storage
from pipeline.aggregate import n_partitions, persisted, shuffle_method
from pipeline.io import read_json, write_json, write_parquet
from pipeline.parts import commit_removal, read_part
from pipeline.record import metadata_to_json, rejected_schema, with_reason
from pipeline.stats import StageStats

DONE = "_done.json"


def decided_once(folder: str, decide: Callable[[str], dict]) -> dict:
    """`decide(folder)`'s summary, computed unless an earlier attempt finished it. `folder` holds
    a global stage's decision files; `_done.json`, written after all of them, commits the folder,
    and a killed attempt's partial files are removed before deciding again."""
    done = storage.join(folder, DONE)
    if not storage.exists(done):
        storage.rm(folder)
        storage.makedirs(folder)
        write_json(decide(folder), done)
    return read_json(done)


RankKey = Literal["quality_score", "length", "id", "order"]
DEFAULT_RANKING: tuple[RankKey, ...] = ("quality_score", "length", "id")
# Rank column and whether larger is better.
_RANK_COLUMNS = {"quality_score": ("quality_score", False), "length": ("length", False),
                 "id": ("id", True), "order": ("node", True),
                 "latest": ("date", False)}  # only url_dedup's frames carry `date` (crawl time)
GROUP_META = pd.DataFrame({
    "group": pd.Series([], dtype="int64"), "node": pd.Series([], dtype="int64"),
    "id": pd.Series([], dtype=object), "quality_score": pd.Series([], dtype="float64"),
    "length": pd.Series([], dtype="int64"), "source": pd.Series([], dtype=object),
    "domain": pd.Series([], dtype=object),
})
DECIDED_META = pd.DataFrame({
    "node": pd.Series([], dtype="int64"), "part": pd.Series([], dtype="int64"),
    "group": pd.Series([], dtype="int64"), "cluster_size": pd.Series([], dtype="int64"),
    "removed": pd.Series([], dtype=bool), "duplicate_of": pd.Series([], dtype=object),
    "in_index": pd.Series([], dtype=bool), "source": pd.Series([], dtype=object), "domain": pd.Series([], dtype=object),
})
SUMMARY_META = pd.DataFrame({"kind": pd.Series([], dtype=object), "key": pd.Series([], dtype=object),
                             "count": pd.Series([], dtype="int64")})


def node_ids(part_index: int, n_rows: int) -> np.ndarray:
    return (np.int64(part_index) << np.int64(32)) | np.arange(n_rows, dtype=np.int64)


def rank_frame(table: pa.Table, part_index: int) -> pd.DataFrame:
    """node, id, quality_score, length (characters), source and domain of one part's rows."""
    def column(name: str) -> list:
        return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows

    quality = (table["quality_score"].to_numpy(zero_copy_only=False) if "quality_score" in table.column_names
               else np.full(table.num_rows, np.nan))
    return pd.DataFrame({
        "node": node_ids(part_index, table.num_rows), "id": column("id"),
        "quality_score": np.asarray(quality, dtype="float64"),
        "length": pc.fill_null(pc.utf8_length(table["text"]), 0).to_numpy().astype(np.int64),
        "source": column("source"), "domain": column("domain"),
    })


def rank_documents(df: pd.DataFrame, ranking: tuple[str, ...]) -> pd.DataFrame:
    """`df` sorted by group, then best representative first (nulls last), node breaking ties."""
    # An indexed document (negative node, from an earlier run: dedup/index.py) is always kept.
    df = df.assign(_from_run=df["node"].to_numpy() >= 0)
    columns, ascending = ["group", "_from_run"], [True, True]
    for key in ranking:
        column, asc = _RANK_COLUMNS[key]
        if column not in columns:
            columns.append(column)
            ascending.append(asc)
    if "node" not in columns:
        columns.append("node")
        ascending.append(True)
    ordered = df.sort_values(columns, ascending=ascending, na_position="last", kind="mergesort")
    return ordered.drop(columns="_from_run")


@dataclasses.dataclass(frozen=True)
class NewEntries:
    """Where `decide` stages the keys of the documents a run keeps, for an index (dedup/index.py)."""

    folder: str
    run: str


def decide_partition(df: pd.DataFrame, ranking: tuple[str, ...], new_entries: NewEntries | None = None,
                     partition_info: dict | None = None) -> pd.DataFrame:
    """For every run document in a group of 2+ in `df`: its group's size, whether it is removed,
    the id of the representative it duplicates and whether that one is indexed (from an earlier
    run). With `new_entries`, the group's key and representative of every group whose kept
    document is this run's (singletons included) are written there for the index."""
    df = rank_documents(df, ranking)
    group, node = df["group"].to_numpy(), df["node"].to_numpy()
    first = np.ones(len(df), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    start = np.flatnonzero(first)
    sizes = np.diff(np.append(start, len(df)))
    member_size = np.repeat(sizes, sizes)
    from_run = node >= 0
    if new_entries is not None:
        number = partition_info["number"] if partition_info else 0
        write_key_entries(df[first & from_run], new_entries.folder, new_entries.run, number)
    keep = (member_size > 1) & from_run
    rep_id = np.repeat(df["id"].to_numpy()[start], sizes)
    out = pd.DataFrame({
        "node": node, "part": node >> np.int64(32), "group": group, "cluster_size": member_size,
        "removed": ~first, "duplicate_of": rep_id, "in_index": np.repeat(~from_run[start], sizes),
        "source": df["source"].to_numpy(), "domain": df["domain"].to_numpy(),
    })[keep]
    return out.reset_index(drop=True).astype(DECIDED_META.dtypes.to_dict())


def summarize_partition(df: pd.DataFrame) -> pd.DataFrame:
    """Counts for the audit: group sizes (one per group), removals per source/domain and of
    documents found in the index."""
    counts: Counter = Counter()
    for size, n in df.drop_duplicates("group")["cluster_size"].value_counts().items():
        counts[("cluster_size", str(int(size)))] += int(n)
    removed = df[df["removed"]]
    if removed["in_index"].any():
        counts[("removed_in_index", "")] += int(removed["in_index"].sum())
    for column in ("source", "domain"):
        for value, n in removed[column].fillna("(none)").value_counts().items():
            counts[(f"removed_by_{column}", str(value))] += int(n)
    rows = [{"kind": k, "key": key, "count": n} for (k, key), n in sorted(counts.items())]
    return pd.DataFrame(rows, columns=SUMMARY_META.columns).astype(SUMMARY_META.dtypes.to_dict())


def write_partition_decisions(df: pd.DataFrame, parts: tuple[str, ...], out_dir: str) -> pd.DataFrame:
    """Write the removals of each input part present in `df` to `out_dir/<part>`."""
    df = df.sort_values("node", kind="mergesort")
    for part_index, rows in df.groupby("part", sort=True):
        table = pa.table({
            "row": pa.array((rows["node"].to_numpy() & 0xFFFFFFFF).astype(np.int32)),
            "duplicate_of": pa.array(rows["duplicate_of"].tolist(), pa.string()),
            "cluster_size": pa.array(rows["cluster_size"].to_numpy(), pa.int64()),
            "in_index": pa.array(rows["in_index"].to_numpy(), pa.bool_()),
        })
        write_parquet(table, storage.join(out_dir, parts[int(part_index)]))
    return pd.DataFrame({"written": [len(df)]})


def decide(client, frame, ranking: tuple[str, ...], parts: tuple[str, ...], out_dir: str, rows: int,
           new_entries: NewEntries | None = None) -> dict:
    """Group `frame` (a Dask DataFrame like GROUP_META, `rows` rows) by `group`, write the
    removals per part under `out_dir`, and return the audit counts."""
    n = n_partitions(rows)
    decided = frame.shuffle(on="group", npartitions=n, shuffle_method=shuffle_method(n))
    decided = persisted(client, decided.map_partitions(decide_partition, ranking, new_entries, meta=DECIDED_META))
    removed = decided[decided["removed"]]
    writes = removed.shuffle(on="part", npartitions=n, shuffle_method=shuffle_method(n))
    writes = writes.map_partitions(write_partition_decisions, parts, str(out_dir),
                                   meta=pd.DataFrame({"written": pd.Series([], dtype="int64")}))
    summary = decided.map_partitions(summarize_partition, meta=SUMMARY_META)
    written, summary = client.gather(client.compute([writes, summary]))
    return audit_from_summary(summary, int(written["written"].sum()))


def audit_from_summary(summary: pd.DataFrame, removed: int) -> dict:
    totals = summary.groupby(["kind", "key"], sort=True)["count"].sum()
    sizes = {k: int(v) for (kind, k), v in totals.items() if kind == "cluster_size"}
    audit = {
        "groups": sum(sizes.values()),
        "documents_in_groups": sum(int(k) * v for k, v in sizes.items()),
        "documents_removed": removed,
        "group_size_histogram": {k: sizes[k] for k in sorted(sizes, key=int)},
    }
    in_index = [int(v) for (kind, _), v in totals.items() if kind == "removed_in_index"]
    if in_index:
        audit["documents_removed_in_index"] = sum(in_index)
    for column in ("source", "domain"):
        kind = f"removed_by_{column}"
        audit[kind] = {k: int(v) for (kd, k), v in totals.items() if kd == kind}
    return audit


# -- applying the decisions -----------------------------------------------------------------

def replace_column(table: pa.Table, name: str, values: list[str | None]) -> pa.Table:
    """`table` with string column `name` replaced by `values`."""
    return table.set_column(table.column_names.index(name), table.schema.field(name), pa.array(values, pa.string()))


def index_reason(reason: str) -> str:
    """The reason of a document removed because an earlier run kept its duplicate (dedup/index.py)."""
    return f"{reason}_in_index"


def _annotate(dropped: pa.Table, decisions: pa.Table, stage: str, reason: str) -> pa.Table:
    metadata = []
    for raw, rep, size in zip(dropped["metadata"].to_pylist(), decisions["duplicate_of"].to_pylist(),
                              decisions["cluster_size"].to_pylist()):
        meta = json.loads(raw) if raw else {}
        meta.update({"duplicate_of": rep, "duplicate_cluster_size": size})
        metadata.append(metadata_to_json(meta))
    in_index = (decisions["in_index"].to_pylist() if "in_index" in decisions.column_names
                else [False] * decisions.num_rows)
    reasons = [index_reason(reason) if indexed else reason for indexed in in_index]
    return with_reason(replace_column(dropped, "metadata", metadata), stage, reasons)


def apply_part(part: str, in_dir: str, decisions_dir: str, out_dir: str, stage: str, reason: str,
               views: bool = False) -> dict:
    """Input `part` without its removed rows (a copy, or with `views` a view of the input
    part); write rejected rows and the part's commit record (last: it marks the part done for
    a resumed run). Runs on a Dask worker. The decisions folder is complete (its phase's done
    marker exists), so a missing decisions file means nothing to remove."""
    in_path = storage.join(in_dir, part)
    table = read_part(in_path)
    path = storage.join(decisions_dir, part)
    decisions = storage.read_table(path) if storage.exists(path) else None
    mask = np.zeros(table.num_rows, dtype=bool)
    rejected = None
    if decisions is not None and decisions.num_rows:
        rows = decisions["row"].to_numpy()
        mask[rows] = True
        rejected = _annotate(table.take(pa.array(rows)), decisions, stage, reason)
        assert rejected.schema.names == rejected_schema(table.schema).names
    return commit_removal(in_path, out_dir, part, table, mask, rejected, views)


def apply_all(ctx, decisions_dir: str, stage: str, reason: str) -> StageStats:
    """`apply_part` for every input part not done yet; the stats of all parts."""
    return ctx.map_parts(apply_part, "apply", decisions_dir=decisions_dir, stage=stage, reason=reason,
                         views=ctx.views)
