"""Dataset statistics reports: `thresher stats PATH [--output DIR]`.

PATH is a run's output folder (`thresher run`/`thresher demo`), a Parquet/JSONL documents
file or folder, or a token-shard folder (a tokenize stage's output). Writes to DIR (default
`PATH/report`, or `<file>-report` beside a file):

- `stats.json`: the measurements, in the versioned schema of `schema.py`
  (`thresher stats --print-schema`); computed on Dask with bounded memory (`collect.py`);
- `report.html`: one self-contained page with inline SVG plots and no network requests;
- `DATASET_CARD.md`: a Hugging Face-style dataset card filled from the stats.

The run's own receipt `OUTPUT/stats.json` is left as the runner wrote it. A run folder that a
live `thresher run` still holds (`OUTPUT/_lock.json`, pipeline/lock.py) is refused with one line.

    from pipeline.report import write_report
    html_path = write_report("out/demo")          # -> out/demo/report/report.html
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pipeline import storage

REPORT_DIR = "report"
FILES = ("stats.json", "report.html", "DATASET_CARD.md")


def default_output(path: str) -> str:
    if storage.isdir(path):
        return storage.join(path, REPORT_DIR)
    return storage.join(storage.parent(path), storage.basename(path).split(".")[0] + "-report")


def write_report(run_dir: str | Path, output_dir: str | Path | None = None, *, client=None,
                 workers: int | None = None, scheduler: str | None = None, text_field: str = "text",
                 tokenizer: str | None = None) -> Path | str:
    """Measure `run_dir` (a run, documents or shards) and write stats.json, report.html and
    DATASET_CARD.md to `output_dir`; return the HTML's path (a Path, or a URL string for an
    fsspec URL such as `s3://bucket/out/report`). Uses `client` if given, else
    starts a local Dask cluster (or connects to `scheduler`) for the measurement."""
    from pipeline.io import write_bytes, write_json
    from pipeline.report.build import build_stats
    from pipeline.report.card import render_card
    from pipeline.report.html import render_html
    from pipeline.report.sources import detect

    target = detect(run_dir)
    out = os.fspath(output_dir) if output_dir is not None else default_output(os.fspath(run_dir))
    if client is None:
        from pipeline.cluster import open_client

        with open_client(scheduler, workers) as own:
            stats = build_stats(target, own, text_field, tokenizer)
    else:
        stats = build_stats(target, client, text_field, tokenizer)
    write_json(stats, storage.join(out, "stats.json"))
    write_bytes(render_card(stats).encode(), storage.join(out, "DATASET_CARD.md"))
    html_path = storage.join(out, "report.html")
    write_bytes(render_html(stats).encode(), html_path)
    return Path(html_path) if storage.is_local(html_path) else html_path


def cmd_stats(args: argparse.Namespace) -> int:
    if args.print_schema:
        from pipeline.report.schema import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.path is None:
        raise ValueError("PATH: give a run's output folder, a documents file or folder, or a shard folder")
    if storage.isdir(args.path):  # a run still writing it: its report would count half its stages
        from pipeline.lock import check_free

        check_free(storage.absolute(args.path), storage.absolute(args.path), "PATH")
    html_path = write_report(args.path, args.output, workers=args.workers, scheduler=args.scheduler,
                             text_field=args.text_field, tokenizer=args.tokenizer)
    print(f"stats:   {storage.join(storage.parent(html_path), 'stats.json')}")
    print(f"card:    {storage.join(storage.parent(html_path), 'DATASET_CARD.md')}")
    print(f"report:  {html_path}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "stats", help="dataset statistics: stats.json, an HTML report with plots, a dataset card",
        description="Measure a run's output folder, Parquet/JSONL documents or a token-shard folder on Dask "
                    "and write stats.json, report.html (self-contained) and DATASET_CARD.md.")
    p.add_argument("path", nargs="?", metavar="PATH", help="run output folder, documents file/folder, or shard folder")
    p.add_argument("--output", metavar="DIR", help="where to write (default: PATH/report)")
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="documents: the text column/field (default: text)")
    p.add_argument("--tokenizer", metavar="MODEL", help="sentencepiece .model to count tokens exactly "
                   "(default: a run's own tokenizer if it has shards, else an estimate of 4 bytes per token)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="compute on this Dask scheduler instead of a local cluster")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPU count)")
    p.add_argument("--print-schema", action="store_true", help="print the JSON Schema of stats.json and exit")
    p.set_defaults(func=cmd_stats)

