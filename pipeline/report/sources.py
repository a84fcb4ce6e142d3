"""What `thresher stats PATH` reads: a run's output folder, a token-shard folder, or documents.

- a *run*: a folder holding `NN-<stage>/_manifest.json` folders (what `thresher run` writes),
  only those its `config.yaml` names;
- *shards*: a folder holding a tokenize stage's `manifest.json` (see SHARDS.md);
- *documents*: a Parquet or JSON-lines file (`.jsonl`, `.json`, optionally `.gz`/`.zst`), a
  folder of them (searched recursively), or one stage's output folder (its `part-*.parquet`,
  never its `rejected/`; a map stage fused into the next ones wrote none: `"materialized":
  false` in its manifest, which lists no parts, so a run's report counts its documents and
  bytes from the manifest and measures no tokens for it).

Documents are read in bounded Arrow batches (`iter_batches`): Parquet by record batch, JSONL
by groups of lines, so a file larger than memory streams. PATH may be an fsspec URL
(`s3://bucket/out`): folders are listed and files read through `pipeline.storage`.

    target = detect("out/demo"); target.kind, [s.dir for s in target.stages]
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from pipeline import storage
from pipeline.io import read_json
from pipeline.parts import part_batches, part_schema
from pipeline.stale import configured_dirs

BATCH_ROWS = 8192
STAGE_DIR = re.compile(r"^(\d{2,})-(.+)$")
MANIFEST = "_manifest.json"
SHARD_MANIFEST = "manifest.json"
# Columns read besides the text; any that a file lacks is simply absent from its batches.
COLUMNS = ("id", "url", "source", "domain", "language", "quality_score", "domain_score", "language_score")


@dataclasses.dataclass(frozen=True)
class DocFile:
    path: str
    format: str  # "parquet" | "jsonl"


@dataclasses.dataclass(frozen=True)
class StageDir:
    """One finished stage of a run: its folder and its `_manifest.json`."""

    index: int
    dir: str
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["stage"]

    @property
    def dir_name(self) -> str:
        return storage.basename(self.dir)

    def path(self, *names: str) -> str:
        return storage.join(self.dir, *names)

    @property
    def materialized(self) -> bool:
        """False for a map stage fused into a later one (pipeline/fuse.py): its kept documents
        were not written, only its rejected ones, records and manifest."""
        return self.manifest.get("materialized", True)

    def unwritten(self) -> str:
        """Why this stage's kept documents cannot be shown, and what to do instead."""
        keep = ("`read: {materialize: true}` in the config" if self.manifest.get("stage") == "read"
                else "--keep-intermediate (or `materialize: true` on the stage)")
        return (f"{self.dir_name} ran fused into {self.manifest.get('fused_into', 'a later stage')}, so its kept "
                f"documents were not written (its rejected ones were); look at "
                f"{self.manifest.get('fused_into', 'that stage')}, or rerun with {keep} to keep them")

    def files(self) -> list[DocFile]:
        return [DocFile(self.path(p), "parquet") for p in self.manifest.get("parts", [])]

    def rejected_files(self) -> list[str]:
        folder = self.path("rejected")
        return [storage.join(folder, n) for n in storage.listdir(folder) if n.startswith("part-")
                and n.endswith(".parquet")]

    def has_raw_pages(self) -> bool:
        """True when the documents still carry raw page bytes (HTML/WARC input before
        extraction): their byte counts are page bytes, not text bytes."""
        parts = self.manifest.get("parts", [])
        return bool(parts) and "raw" in part_schema(self.path(parts[0])).names


@dataclasses.dataclass
class Target:
    kind: str  # "run" | "documents" | "shards"
    path: str
    stages: list[StageDir] = dataclasses.field(default_factory=list)
    files: list[DocFile] = dataclasses.field(default_factory=list)
    shard_dir: str | None = None

    @property
    def name(self) -> str:
        return storage.basename(self.path) or self.path


def detect(path: str | Path) -> Target:
    """What PATH is; raises ValueError (naming PATH) when it is none of the three."""
    path = os.fspath(path)
    if not storage.exists(path):
        raise ValueError(f"PATH {path!r} does not exist")
    is_dir = storage.isdir(path)
    if is_dir and is_shard_dir(path):
        return Target("shards", path, shard_dir=path)
    if is_dir and (stages := run_stages(path)):
        return Target("run", path, stages=stages)
    files = document_files(path)
    if not files:
        raise ValueError(f"PATH {path!r}: no run output (NN-stage/_manifest.json), shard manifest.json, "
                         "or Parquet/JSONL documents found there")
    return Target("documents", path, files=files)


def is_shard_dir(path: str) -> bool:
    file = storage.join(path, SHARD_MANIFEST)
    if not storage.isfile(file):
        return False
    try:
        return read_json(file).get("format") == "megatron-indexed"
    except (ValueError, AttributeError):
        return False


def run_stages(path: str) -> list[StageDir]:
    """The finished stages of a run folder, in order (a stage without a manifest did not
    finish and is left out): those its `config.yaml` names, when it has one, so a folder
    left by an earlier config is never counted."""
    stages = []
    wanted = configured_dirs(path)
    for name in storage.listdir(path):
        if wanted is not None and name not in wanted:
            continue
        child = storage.join(path, name)
        match = STAGE_DIR.match(name)
        if match and storage.isfile(storage.join(child, MANIFEST)):
            stages.append(StageDir(int(match.group(1)), child, read_json(storage.join(child, MANIFEST))))
    return stages


def doc_format(path: str) -> str | None:
    suffixes = ["." + s for s in storage.basename(path).split(".")[1:] if s not in ("gz", "zst")]
    last = suffixes[-1] if suffixes else ""
    return {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}.get(last)


def document_files(path: str) -> list[DocFile]:
    if storage.isfile(path):
        return [DocFile(path, doc_format(path))] if doc_format(path) else []
    if storage.isfile(storage.join(path, MANIFEST)):  # one stage's output: its parts, not rejected/
        manifest = read_json(storage.join(path, MANIFEST))
        if not manifest.get("materialized", True):
            raise ValueError(f"PATH {path!r}: this stage ran fused with the next ones and its documents were not "
                             f"written (they went on to {manifest.get('fused_into')}); give that stage's folder, or "
                             "rerun with `thresher run --keep-intermediate` (or `materialize: true` on the stage)")
        return StageDir(0, path, manifest).files()
    files = storage.walk_files(path)
    # A report written into the folder earlier (its stats.json is JSON, not documents) is skipped.
    present = set(files)
    reports = {posixpath.dirname(f) for f in files if posixpath.basename(f) == "report.html"
               and posixpath.join(posixpath.dirname(f), "stats.json") in present}
    found = (f for f in files if not posixpath.basename(f).startswith(".")
             and not any(f.startswith(r + "/") if r else True for r in reports))
    return [DocFile(storage.join(path, f), doc_format(f)) for f in found if doc_format(f)]


def iter_batches(file: DocFile, text_field: str = "text") -> Iterator[tuple[pa.Table, int]]:
    """(batch, unreadable records) pairs; each batch has a `text` column and those of
    COLUMNS that the file has."""
    if file.format == "parquet":
        yield from _parquet_batches(file.path, text_field)
    else:
        yield from _jsonl_batches(file.path, text_field)


def _parquet_batches(path: str, text_field: str) -> Iterator[tuple[pa.Table, int]]:
    names = part_schema(path).names  # a stage's part may be a view (pipeline/parts.py)
    if text_field not in names:
        raise ValueError(f"--text-field: {path} has no column {text_field!r}; its columns are {', '.join(names)}")
    columns = [text_field] + [c for c in COLUMNS if c in names and c != text_field]
    for batch in part_batches(path, columns=columns, batch_size=BATCH_ROWS):
        table = pa.Table.from_batches([batch])
        if text_field != "text":
            table = table.rename_columns(["text" if n == text_field else n for n in table.column_names])
        yield table, 0


def _jsonl_batches(path: str, text_field: str) -> Iterator[tuple[pa.Table, int]]:
    from pipeline.readers.jsonl import get_dotted

    rows: list[dict] = []
    bad = 0
    with storage.open_lines(path) as f:
        try:
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    bad += 1
                    continue
                text = get_dotted(record, text_field) if isinstance(record, dict) else None
                if not isinstance(text, str):
                    bad += 1
                    continue
                rows.append({"text": text, **{c: _scalar(record.get(c)) for c in COLUMNS}})
                if len(rows) >= BATCH_ROWS:
                    yield _rows_table(rows), bad
                    rows, bad = [], 0
        except (OSError, EOFError, zlib.error) as error:  # a truncated .gz: stats of what was read
            bad += 1
            print(f"thresher stats: warning: {path}: {type(error).__name__}: {error}")
    if rows or bad:
        yield _rows_table(rows), bad


def _scalar(value):
    return value if value is None or isinstance(value, (str, int, float)) else json.dumps(value, sort_keys=True)


def _rows_table(rows: list[dict]) -> pa.Table:
    types = {"quality_score": pa.float64(), "domain_score": pa.float64(), "language_score": pa.float64()}
    fields = [pa.field("text", pa.string())] + [pa.field(c, types.get(c, pa.string())) for c in COLUMNS]
    columns = {"text": [r["text"] for r in rows]}
    for c in COLUMNS:
        values = [r[c] for r in rows]
        if c not in types:
            values = [None if v is None else str(v) for v in values]
        else:
            values = [v if isinstance(v, (int, float)) else None for v in values]
        columns[c] = values
    return pa.table(columns, schema=pa.schema(fields))
