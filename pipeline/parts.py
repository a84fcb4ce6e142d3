"""A stage's parts as readers see them: a Parquet file, or a view of an earlier stage's part.

A global stage that only removes documents (exact_dedup, remove_duplicates, decontaminate,
select) and that is not the run's last stage writes, per part, which rows of its input it
dropped instead of a copy of the rows it kept: `<stage>/_views/<part>.json` names the source
part and the dropped rows' file, both relative to the run folder, so a stage passing the part
through copies the spec unchanged. A view of a view is flattened when it is written: its
source is always a written Parquet part and its drop list holds the source's row numbers.

    {"source": "08-pii/part-00000.parquet", "drop": "09-exact_dedup/_views/part-00000.drop.parquet",
     "source_rows": 412, "rows": 398, "bytes": 1203311}

Every stage reads its input through `read_part` / `iter_batches`, so a view reads like the
part it stands for; the part's name stays the same (`part-00000.parquet`, in the manifest's
`parts`, with `"views": true`). Nothing lives at the part's own path, so tools outside thresher
(`datasets`, DuckDB) see no documents in that folder: `--keep-intermediate` writes copies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import storage
from pipeline.io import commit, file_sizes, parquet_sizes, read_json, table_bytes, write_json, write_parquet
from pipeline.stats import part_stats

VIEWS = "_views"
BATCH_ROWS = 1024


def spec_name(part: str) -> str:
    return f"{VIEWS}/{part}.json"


def drop_name(part: str) -> str:
    return f"{VIEWS}/{part.removesuffix('.parquet')}.drop.parquet"


def view_of(path: str) -> dict[str, Any] | None:
    """The view spec standing at part `path`, or None when `path` is a written part."""
    if os.path.exists(path) if storage.is_local(path) else storage.exists(path):
        return None
    spec = storage.join(storage.parent(path), spec_name(storage.basename(path)))
    return read_json(spec) if storage.exists(spec) else None


def _view_or_missing(path: str) -> dict[str, Any]:
    view = view_of(path)
    if view is None:
        raise FileNotFoundError(f"{path}: no such part, and no view of one ({spec_name(storage.basename(path))})")
    return view


def _root(path: str) -> str:
    return storage.parent(storage.parent(path))  # <run>/<stage>/<part>


def _dropped(path: str, view: dict[str, Any]) -> np.ndarray:
    if not view.get("drop"):
        return np.zeros(0, np.int64)
    table = storage.read_table(storage.join(_root(path), view["drop"]), columns=["row"])
    return table.column("row").to_numpy()


def _keep_mask(path: str, view: dict[str, Any], rows: int | None = None) -> np.ndarray:
    if rows is not None and rows != view["source_rows"]:
        raise ValueError(f"{path}: a view of {view['source']}, which held {view['source_rows']} rows when the view "
                         f"was written and holds {rows} now; rerun the stages from the one that wrote it")
    mask = np.ones(view["source_rows"], dtype=bool)
    mask[_dropped(path, view)] = False
    return mask


def read_part(path: str, columns: list[str] | None = None) -> pa.Table:
    """Part `path` of a stage: its Parquet file, or the rows its view keeps of its source."""
    try:
        return storage.read_table(path, columns=columns)
    except FileNotFoundError:
        view = _view_or_missing(path)
    source = storage.read_table(storage.join(_root(path), view["source"]), columns=columns)
    return source.filter(pa.array(_keep_mask(path, view, source.num_rows)))


def part_batches(path: str, columns: list[str] | None = None, batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Part `path`'s rows in bounded batches (a view filters its source batch by batch)."""
    view = view_of(path)
    source = path if view is None else storage.join(_root(path), view["source"])
    parquet = storage.parquet_file(source)
    mask, start = (None if view is None else _keep_mask(path, view, parquet.metadata.num_rows)), 0
    for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
        if mask is not None:
            batch, start = batch.filter(pa.array(mask[start:start + batch.num_rows])), start + batch.num_rows
        yield batch


def part_sizes(path: str) -> tuple[int, int]:
    """Rows and text bytes of part `path` (see `pipeline.io.parquet_sizes`)."""
    view = view_of(path)
    return parquet_sizes(path) if view is None else (view["rows"], view["bytes"])


def part_rows(path: str) -> int:
    return part_sizes(path)[0]


def part_schema(path: str) -> pa.Schema:
    view = view_of(path)
    return storage.read_schema(path if view is None else storage.join(_root(path), view["source"]))


def part_cost(path: str) -> int:
    """Bytes on disk of part `path`, or of a view's source scaled by the rows it keeps: a
    cost estimate for scheduling the tasks that read it."""
    view = view_of(path)
    if view is None:
        return file_sizes([path])[0]
    size = file_sizes([storage.join(_root(path), view["source"])])[0]
    return size * view["rows"] // max(view["source_rows"], 1)


# -- writing ------------------------------------------------------------------------------------

def write_view(in_path: str, in_rows: int, out_dir: str, part: str, drop: np.ndarray, kept_rows: int,
               kept_bytes: int) -> list[str]:
    """Write stage `out_dir`'s view of input part `in_path` (`in_rows` rows) without its rows
    `drop` (row numbers of the input part); returns the files written, relative to `out_dir`,
    for its commit record."""
    stage = storage.basename(out_dir)
    source_view = view_of(in_path)
    drop = np.asarray(drop, dtype=np.int64)
    if source_view is None:
        source, source_rows = f"{storage.basename(storage.parent(in_path))}/{storage.basename(in_path)}", in_rows
    else:  # flatten: our rows are the source's kept rows
        source, source_rows = source_view["source"], source_view["source_rows"]
        kept_in_source = np.flatnonzero(_keep_mask(in_path, source_view))
        drop = np.union1d(_dropped(in_path, source_view), kept_in_source[drop])
    files = [spec_name(part)]
    spec: dict[str, Any] = {"source": source, "drop": None, "source_rows": source_rows,
                            "rows": kept_rows, "bytes": kept_bytes}
    if len(drop):
        write_parquet(pa.table({"row": pa.array(np.sort(drop), pa.int64())}), storage.join(out_dir, drop_name(part)))
        spec["drop"] = f"{stage}/{drop_name(part)}"
        files.insert(0, drop_name(part))
    write_json(spec, storage.join(out_dir, spec_name(part)))
    return files


def pass_view(in_path: str, out_dir: str, part: str) -> bool:
    """Copy input part `in_path`'s view into stage `out_dir` (a stage passing its input
    through); False when `in_path` is a written part."""
    view = view_of(in_path)
    if view is None:
        return False
    write_json(view, storage.join(out_dir, spec_name(part)))
    return True


def commit_removal(in_path: str, out_dir: str, part: str, table: pa.Table, dropped: np.ndarray,
                   rejected: pa.Table | None, views: bool) -> dict:
    """A global stage's work on input part `in_path` (read as `table`) when it only removes the
    rows marked in `dropped`: their `rejected/` rows, then the kept rows as a copy, or (with
    `views`) as a view of the input part, then the commit record, which gives the kept rows and
    bytes either way (so the manifest, and the parts a next stage merges, are the same). Returns
    the part's stats."""
    kept = table.filter(pa.array(~dropped))
    stats = part_stats(table, kept, rejected).to_dict()
    files = []
    if rejected is not None and rejected.num_rows:
        write_parquet(rejected, storage.join(out_dir, "rejected", part))
        files.append(f"rejected/{part}")
    rows, n_bytes = kept.num_rows, table_bytes(kept)
    if views:
        files += write_view(in_path, table.num_rows, out_dir, part, np.flatnonzero(dropped), rows, n_bytes)
    else:
        write_parquet(kept, storage.join(out_dir, part))
        files.append(part)
    commit(out_dir, part, {**stats, "rows": rows, "bytes": n_bytes}, files)
    return stats
