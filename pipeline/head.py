"""`thresher head`: look at the documents of a stage before (or instead of) running more.

    thresher head OUTPUT [--stage N|NAME] [-n 5] [--rejected] [--where EXPR] [--id ID] [--columns C ...] [--json]
    thresher head OUTPUT --diff STAGE [STAGE2] [--id ID] [--json]

OUTPUT is a run's output folder (only the stages its `config.yaml` names), one stage's folder, a
Parquet part or a folder of them, local or an fsspec URL. Documents come in a stable order (the
stage's parts in manifest order, rows in part order); the default stage is the last one that
wrote documents. `--rejected` shows what the stage removed (its `rejected/` rows with `stage` and
`reason`; every stage's when no `--stage` is given) and, for the read stage, the quarantined
files. `--where` is a pandas `DataFrame.query` expression (engine "python") over the stored
columns plus `length` (characters of text): `source == 'web' and length > 2000`,
`reason.str.startswith('gopher')`, `text.str.contains('cookie', na=False)`. A terminal gets one
block per document (id, url, source, domain, length, reason, the first 300 characters of text,
or of the raw page before extraction); `--json` prints JSON lines with whole values. `--diff`
shows one document before and after a stage (`head_diff.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import storage
from pipeline.io import read_json
from pipeline.parts import VIEWS, part_batches, part_schema
from pipeline.report.sources import MANIFEST, STAGE_DIR, StageDir, run_stages
from pipeline.stale import is_stage_folder

SNIPPET_CHARS = 300
TERMINAL_COLUMNS = ("id", "url", "source", "domain", "length", "reason", "text")
BATCH_ROWS, RAW_BATCH_ROWS = 1024, 64  # rows with raw pages are large: fewer at a time


@dataclasses.dataclass(frozen=True)
class Selection:
    """The Parquet files to show, in order, each with the stage folder it belongs to."""

    files: list[tuple[str, str]]  # (stage folder name, file path)
    total: int | None  # documents in them, when the manifests say
    quarantine: list[dict] = dataclasses.field(default_factory=list)


# -- what PATH and --stage point at -------------------------------------------------------------

def open_target(path: str) -> list[StageDir] | None:
    """The stages of a run's output folder, a one-stage list for a stage folder, or None
    for a Parquet file or a folder of them."""
    if not storage.exists(path):
        raise ValueError(f"PATH {path!r} does not exist")
    if not storage.isdir(path):
        return None
    if storage.isfile(storage.join(path, MANIFEST)):
        match = STAGE_DIR.match(storage.basename(path))
        return [StageDir(int(match.group(1)) if match else 0, path, read_json(storage.join(path, MANIFEST)))]
    stages = run_stages(path)
    if not stages and any(is_stage_folder(path, name) for name in storage.listdir(path)):
        raise ValueError(f"PATH {path!r}: no stage of this run has finished yet (no NN-stage/_manifest.json)")
    return stages or None


def pick_stage(stages: list[StageDir], key: str, option: str = "--stage") -> StageDir:
    """The stage `key` names: its number (5), its name (gopher_quality) or its folder."""
    found = [s for s in stages if key in (str(s.index), f"{s.index:02d}", s.name, s.dir_name)]
    known = ", ".join(s.dir_name for s in stages)
    if not found:
        raise ValueError(f"{option}: no finished stage {key!r} here; the stages are {known}")
    if len(found) > 1:
        raise ValueError(f"{option}: {key!r} names {len(found)} stages; give one of "
                         f"{', '.join(s.dir_name for s in found)}")
    return found[0]


def select(path: str, stage: str | None, rejected: bool) -> Selection:
    stages = open_target(path)
    if stages is None:
        if stage is not None:
            raise ValueError(f"--stage: {path!r} is not a run's output folder; give the run's folder")
        files = parquet_files(path, rejected)
        if not files:
            raise ValueError(f"PATH {path!r}: no run output, stage folder or Parquet file there"
                             + (" (and no rejected/ folder)" if rejected else ""))
        return Selection([(storage.basename(path), f) for f in files], None)
    if stage is not None:
        stages = [pick_stage(stages, stage)]
    elif not rejected:
        with_docs = [s for s in stages if s.manifest.get("parts")]
        stages = with_docs[-1:] or stages[-1:]
    if rejected:
        files = [(s.dir_name, f) for s in stages for f in s.rejected_files()]
        quarantine = [{"stage": s.dir_name, **q} for s in stages for q in s.manifest["stats"].get("quarantine", [])]
        return Selection(files, sum(s.manifest["stats"].get("docs_rejected", 0) for s in stages), quarantine)
    (s,) = stages
    if not s.materialized:
        raise ValueError(f"--stage: {s.unwritten()}")
    return Selection([(s.dir_name, f.path) for f in s.files()], sum(s.manifest.get("rows", {}).values()))


def parquet_files(path: str, rejected: bool) -> list[str]:
    """A Parquet file itself, or the Parquet files under a folder: those in `rejected/`
    folders with `rejected`, the others without."""
    if not storage.isdir(path):
        return [path]
    files = [f for f in storage.walk_files(path) if f.endswith(".parquet") and not storage.basename(f).startswith(".")
             and not f.startswith(f"{VIEWS}/")]
    return [storage.join(path, f) for f in files if ("rejected" in f.split("/")[:-1]) == rejected]


# -- rows ---------------------------------------------------------------------------------------

def iter_rows(selection: Selection, where: str | None = None, doc_id: str | None = None) -> Iterator[dict]:
    """The selected documents as dicts (with `_stage`: their stage folder), in order."""
    for stage, path in selection.files:
        rows = RAW_BATCH_ROWS if "raw" in part_schema(path).names else BATCH_ROWS
        for batch in part_batches(path, batch_size=rows):  # a stage's part may be a view (pipeline/parts.py)
            table = pa.Table.from_batches([batch])
            if doc_id is not None:
                table = table.filter(pc.equal(table.column("id"), doc_id))
            if where is not None:
                table = table.take(pa.array(matching(table, where), pa.int64()))
            for row in table.to_pylist():
                yield {"_stage": stage, **row}


def matching(table: pa.Table, where: str) -> list[int]:
    """Positions of the rows of `table` for which the pandas query `where` holds."""
    frame = table.drop_columns([c for c in ("raw",) if c in table.column_names]).to_pandas()
    if "length" not in frame.columns:
        frame["length"] = frame["text"].str.len().fillna(0).astype(int) if "text" in frame.columns else 0
    try:
        return list(frame.query(where, engine="python").index)
    except Exception as error:  # pandas raises NameError, SyntaxError, TypeError, ... for a bad expression
        raise ValueError(f"--where {where!r}: {type(error).__name__}: {error}; the columns are "
                         f"{', '.join(frame.columns)}") from None


def check_where(selection: Selection, where: str) -> None:
    """Fail on a bad --where before any row is read (and even when there are no rows)."""
    if selection.files:
        matching(part_schema(selection.files[0][1]).empty_table(), where)


# -- output -------------------------------------------------------------------------------------

def snippet(text: str | None, chars: int = SNIPPET_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= chars else flat[:chars] + "…"


def raw_text(raw: bytes | None) -> str:
    return bytes(raw).decode("utf-8", "replace") if raw is not None else ""


def shown_value(row: dict, column: str):
    if column == "length":
        return f"{len(row['text'])} chars" if row.get("text") is not None else (
            f"{len(row['raw'])} bytes raw" if row.get("raw") is not None else "0 chars")
    if column == "text" and row.get("text") is None and row.get("raw") is not None:
        return "(raw page) " + snippet(raw_text(row["raw"]))
    value = row.get(column)
    if isinstance(value, bytes):
        value = raw_text(value)
    return snippet(value) if isinstance(value, str) else "-" if value is None else value


def print_block(number: int, row: dict, columns: tuple[str, ...]) -> None:
    print(f"── [{number}] {row['_stage']}")
    for column in columns:
        if column == "reason" and "reason" not in row:
            continue
        print(f"  {column + ':':<9} {shown_value(row, column)}")


def json_line(row: dict, columns: tuple[str, ...] | None) -> str:
    """One JSON object: `folder` (the stage folder), then the columns, whole (raw as text)."""
    out = {"folder": row["_stage"]}
    for c in columns or [c for c in row if c not in ("_stage", "raw")]:
        if c == "length":
            out[c] = len(row["text"]) if row.get("text") is not None else None
        else:
            out[c] = raw_text(row[c]) if isinstance(row.get(c), bytes) else row.get(c)
    return json.dumps(out, ensure_ascii=False, default=str)


def parse_columns(values: list[str] | None, selection: Selection) -> tuple[str, ...] | None:
    """`--columns id source` or `--columns id,source`, each checked against the files."""
    if not values:
        return None
    columns = tuple(c for v in values for c in v.split(",") if c)
    known = set(part_schema(selection.files[0][1]).names) | {"length"} if selection.files else set(columns)
    if unknown := [c for c in columns if c not in known]:
        raise ValueError(f"--columns: no column {unknown[0]!r}; the columns are {', '.join(sorted(known))}")
    return columns


def cmd_head(args: argparse.Namespace) -> int:
    if args.diff:
        from pipeline.head_diff import show_diff

        given = [o for o, v in (("--stage", args.stage), ("--rejected", args.rejected), ("--where", args.where),
                                ("--columns", args.columns)) if v]
        if given:
            raise ValueError(f"{given[0]}: --diff shows one document (--id) before and after a stage; drop {given[0]}")

        return show_diff(args.path, args.diff, args.id, args.json)
    if args.n < 0:
        raise ValueError(f"-n: {args.n} is negative; give how many documents to show")
    selection = select(args.path, args.stage, args.rejected)
    if args.where:
        check_where(selection, args.where)
    columns = parse_columns(args.columns, selection)
    shown = 0
    for row in itertools.islice(iter_rows(selection, args.where, args.id), args.n):
        shown += 1
        if args.json:
            print(json_line(row, columns))
        else:
            print_block(shown, row, columns or TERMINAL_COLUMNS)
    if not args.json:
        print_footer(selection, shown, args)
    return 0


def print_footer(selection: Selection, shown: int, args: argparse.Namespace) -> None:
    filtered = args.where is not None or args.id is not None
    total = f" of {selection.total}" if selection.total is not None and not filtered else ""
    kind = ("matching " if filtered else "") + ("rejected document(s)" if args.rejected else "document(s)")
    more = " (-n N for more, --json for whole values)" if shown == args.n else ""
    print(f"{shown}{total} {kind} shown{more}")
    for q in [] if filtered else selection.quarantine:
        print(f"quarantined file in {q['stage']}: {q['file']}  {q['reason']}  {q.get('detail', '')}")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "head", help="print documents of a stage (kept or rejected), or one document before and after a stage",
        description="Print the first documents of a run's stage, a stage folder or Parquet files: id, url, source, "
                    "domain, length, reason and the start of the text; --json for JSON lines.")
    p.add_argument("path", metavar="PATH", help="a run's output folder, a stage folder, or Parquet file(s)")
    p.add_argument("--stage", metavar="N|NAME", help="the stage (number, name or folder; default: the last stage "
                   "that wrote documents, or every stage with --rejected)")
    p.add_argument("-n", "--n", type=int, default=5, metavar="N", help="documents to show (default 5)")
    p.add_argument("--rejected", action="store_true", help="the documents the stage removed, with their reasons")
    p.add_argument("--where", metavar="EXPR", help="a pandas query over the columns and `length`, e.g. "
                   "\"source == 'web' and length > 1000\"")
    p.add_argument("--id", metavar="ID", help="only the document with this id (with --diff: the document to compare)")
    p.add_argument("--columns", nargs="+", metavar="COL", help="the columns to show (default on a terminal: "
                   f"{' '.join(TERMINAL_COLUMNS)}; with --json: all but raw)")
    p.add_argument("--json", action="store_true", help="JSON lines with whole values")
    p.add_argument("--diff", nargs="+", metavar="STAGE", help="one document before and after STAGE (or from the "
                   "first STAGE to the second): a unified diff of its text; default document: the first one "
                   "the stage changed or dropped")
    p.set_defaults(func=cmd_head)
