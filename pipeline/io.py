"""Atomic, deterministic file writes for every stage output.

Everything is written to a temporary name in the same directory and renamed into place, so
a reader (or a resumed run) sees either the whole file or none of it. Parquet files are
written with zstd and no timestamps, so the same table gives the same bytes on every run. A
table with no rows is written as a file with its schema and no row group: pyarrow writes one
empty row group otherwise, which `datasets.load_dataset("parquet")` refuses ("BatchSize must
be greater than 0"), while pandas, DuckDB and pyarrow.dataset read both.

    write_parquet(table, out / "part-00000.parquet"); write_json({"a": 1}, out / "_manifest.json")
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 4096


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def replace_atomically(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def write_parquet(table: pa.Table, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    if table.num_rows:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    else:
        pq.ParquetWriter(tmp, table.schema, compression="zstd").close()  # schema only, no row group
    replace_atomically(tmp, path)


def write_bytes(data: bytes, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    tmp.write_bytes(data)
    replace_atomically(tmp, path)


def write_json(obj: Any, path: str | Path) -> None:
    write_bytes((json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n").encode(), path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def parquet_rows(path: str | Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sizes(paths: Iterable[str | os.PathLike]) -> list[int]:
    """Sizes in bytes of `paths`, in order (a cost estimate for scheduling their tasks)."""
    return [os.path.getsize(p) for p in paths]
