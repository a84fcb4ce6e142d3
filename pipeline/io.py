"""Atomic, deterministic file writes for every stage output, on local disk and object stores.

Local disk: everything is written to a temporary name in the same directory and renamed into
place, so a reader (or a resumed run) sees either the whole file or none of it. Object stores
(any fsspec URL such as `s3://bucket/key`) have no rename: a file is uploaded as one object,
which becomes visible whole when its upload completes, and a part counts only once a commit
record lists it (see the runner). Parquet files are written with zstd and no timestamps, so
the same table gives the same bytes on every run and on every store. A table with no rows is
written as a file with its schema and no row group: pyarrow writes one empty row group
otherwise, which `datasets.load_dataset("parquet")` refuses ("BatchSize must be greater than
0"), while pandas, DuckDB and pyarrow.dataset read both.

    write_parquet(table, join(out, "part-00000.parquet")); write_json({"a": 1}, join(out, "_manifest.json"))
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.stats import StageStats

ROW_GROUP_ROWS = 4096


_MANGLED_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/[^/]")  # s3:/bucket/key (not a drive letter)


def _local(path: str | os.PathLike) -> Path:
    """`path` as a local Path; a URL that went through pathlib (`s3:/bucket/key`) is a bug."""
    if _MANGLED_URL.match(os.fspath(path)):
        raise ValueError(f"{os.fspath(path)!r} is a URL mangled by pathlib; keep URLs as strings (pipeline.storage)")
    return Path(path)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def replace_atomically(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


# A full disk (or quota): the write fails, its temp file is deleted (freeing what it took) and
# the error names the file it was for; no commit record is written after a failed write, so a
# rerun redoes the task (see "the commit protocol" below).
FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def _writing(tmp: Path, path: Path) -> Iterator[None]:
    """Around writing `tmp` for `path`: on any error the temp file goes; a full disk is an
    OSError that names `path` (pyarrow's and Python's own name no file)."""
    try:
        yield
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in FULL:
            raise OSError(error.errno, os.strerror(error.errno), os.fspath(path)) from error
        raise


def write_parquet(table: pa.Table, path: str | os.PathLike) -> None:
    if not storage.is_local(path):
        fs, key = storage.filesystem(path)
        with fs.open(key, "wb") as f:
            _write_table(table, f)
        return
    path = _local(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    with _writing(tmp, path):
        _write_table(table, tmp)
    replace_atomically(tmp, path)


def _write_table(table: pa.Table, where) -> None:
    if table.num_rows:
        pq.write_table(table, where, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    else:
        pq.ParquetWriter(where, table.schema, compression="zstd").close()  # schema only, no row group


def write_bytes(data: bytes, path: str | os.PathLike) -> None:
    if not storage.is_local(path):
        fs, key = storage.filesystem(path)
        fs.pipe_file(key, data)
        return
    path = _local(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    with _writing(tmp, path):
        tmp.write_bytes(data)
    replace_atomically(tmp, path)


def upload_file(local: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished local file to `path`: a rename on local disk, one upload elsewhere."""
    if storage.is_local(path):
        _local(path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, path)
        return
    fs, key = storage.filesystem(path)
    fs.put_file(os.fspath(local), key)
    os.unlink(local)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    write_bytes((json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n").encode(), path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(storage.read_bytes(path))


def parquet_rows(path: str | os.PathLike) -> int:
    return storage.parquet_file(path).metadata.num_rows


SIZED_COLUMNS = ("text", "raw")  # what a part's size counts: its text, and its pages before extraction


def table_bytes(table: pa.Table) -> int:
    """Bytes of the text and raw page values in `table`: the measure parts are cut and merged by."""
    return sum(int(pc.sum(pc.binary_length(table.column(c))).as_py() or 0)
               for c in SIZED_COLUMNS if c in table.column_names)


def parquet_sizes(path: str | os.PathLike) -> tuple[int, int]:
    """Rows and an estimate of `table_bytes` of a Parquet file from its footer alone: the
    uncompressed size of its text and raw column chunks (values plus 4 bytes each)."""
    meta = storage.parquet_file(path).metadata
    n_bytes = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            if column.path_in_schema in SIZED_COLUMNS:
                n_bytes += column.total_uncompressed_size
    return meta.num_rows, n_bytes


def file_sha256(path: str | os.PathLike) -> str:
    return storage.sha256(path)


def file_sizes(paths: Iterable[str | os.PathLike]) -> list[int]:
    """Sizes in bytes of `paths`, in order (a cost estimate for scheduling their tasks)."""
    return [os.path.getsize(p) if storage.is_local(p) else storage.size(p) for p in paths]


# -- the commit protocol ----------------------------------------------------------------------
# A task writes its files (immutable: never rewritten in place), then its commit record
# `_stats/<name>.json` (its stats plus `files`: what it wrote, relative to the stage folder).
# Only files a record lists count; the stage's `_manifest.json`, written last, lists the parts.

COMMITS = "_stats"


def commit(out_dir: str, name: str, stats: dict, files: Iterable[str]) -> dict:
    """Write task `name`'s commit record, after every file in `files` has been written."""
    record = {**stats, "files": sorted(files)}
    write_json(record, storage.join(out_dir, COMMITS, f"{name}.json"))
    return record


def commit_part(out_dir: str, part: str, kept: pa.Table, rejected: pa.Table | None, stats: StageStats) -> dict:
    """A global stage's work on one part, written and committed: its rejected rows (if any) to
    `rejected/<part>`, its kept rows to `<part>`, then its commit record. Returns the stats."""
    files = [part]
    if rejected is not None and rejected.num_rows:
        write_parquet(rejected, storage.join(out_dir, "rejected", part))
        files.append(f"rejected/{part}")
    write_parquet(kept, storage.join(out_dir, part))
    result = stats.to_dict()
    commit(out_dir, part, result, files)
    return result


def is_committed(out_dir: str, name: str) -> bool:
    return storage.exists(storage.join(out_dir, COMMITS, f"{name}.json"))


def committed_names(out_dir: str) -> set[str]:
    """Names of the tasks with a commit record under `out_dir` (one listing, no reads)."""
    return {n.removesuffix(".json") for n in storage.listdir(storage.join(out_dir, COMMITS)) if n.endswith(".json")}


def commit_records(out_dir: str) -> dict[str, dict]:
    """Every commit record under `out_dir`, by task name."""
    folder = storage.join(out_dir, COMMITS)
    names = [n for n in storage.listdir(folder) if n.endswith(".json")]
    return {n.removesuffix(".json"): json.loads(data) for n, data in zip(names, storage.read_many(folder, names))}


def committed_parts(records: Iterable[dict]) -> list[str]:
    """The top-level `part-*.parquet` files the records list, sorted."""
    return sorted({f for r in records for f in r.get("files", ()) if "/" not in f and f.startswith("part-")})
