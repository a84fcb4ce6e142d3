"""Extraction benchmark: thresher's `extract` stage vs plain `trafilatura.extract()`.

Quality: token-level precision/recall/F1 (bags of lower-cased word tokens, summed over pages)
of the extracted text against the ground truth of ../shared/data/article_extraction_scrapinghub
and ../shared/data/extraction_cleaneval, for thresher (default `extract` params) and for
`trafilatura.extract(page_bytes)` with default settings, in the same run.

Throughput: docs/s of thresher's extract stage on a local Dask cluster of N workers (steady
state: the stage's wall time from its manifest; cluster start-up and the read stage are
reported separately) next to the plain call in one process, over the same pages repeated until
each measured run lasts >= --min-seconds. Medians of --runs runs.

    .venv/bin/python bench/extraction.py                 # full: >= 30 s per measured run
    .venv/bin/python bench/extraction.py --quick         # a smoke run: few pages, 1 run
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # bench/ holds scripts named like modules (tokenize, filters): never import from it

import argparse
import gzip
import json
import math
import multiprocessing
import re
import statistics
import tempfile
import time
from collections import Counter

import pyarrow.parquet as pq
import trafilatura

from pipeline.cluster import open_client
from pipeline.config import parse_config
from pipeline.runner import Runner

DATA = REPO.parent / "shared" / "data"
TOKEN = re.compile(r"\w+", re.UNICODE)
GOLD_MARKER = re.compile(r"^\s*<(p|h|l)>\s*", re.IGNORECASE | re.MULTILINE)


def load_scrapinghub() -> dict[str, tuple[bytes, str]]:
    root = DATA / "article_extraction_scrapinghub"
    truth = json.loads((root / "ground-truth.json").read_text())
    return {p.name: (gzip.decompress(p.read_bytes()), truth[p.name.split(".")[0]]["articleBody"])
            for p in sorted((root / "html").glob("*.html.gz"))}


def load_cleaneval() -> dict[str, tuple[bytes, str]]:
    root = DATA / "extraction_cleaneval"
    pages = {}
    for p in sorted((root / "html").glob("*.html.gz")):
        gold = gzip.decompress((root / "gold" / p.name.replace(".html.gz", ".txt.gz")).read_bytes())
        text = gold.decode("utf-8", "replace").split("\n", 1)[-1]  # first line is "URL: ..."
        pages[p.name] = (gzip.decompress(p.read_bytes()), GOLD_MARKER.sub("", text))
    return pages


def prf(pairs: list[tuple[str, str]]) -> tuple[float, float, float]:
    """Micro precision/recall/F1 of bags of word tokens over (predicted, truth) pairs."""
    tp = fp = fn = 0
    for predicted, truth in pairs:
        p, t = Counter(TOKEN.findall(predicted.lower())), Counter(TOKEN.findall(truth.lower()))
        common = sum((p & t).values())
        tp, fp, fn = tp + common, fp + sum(p.values()) - common, fn + sum(t.values()) - common
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def plain_extract(pages: list[bytes]) -> tuple[list[str], float]:
    start = time.perf_counter()
    texts = [trafilatura.extract(page) or "" for page in pages]
    return texts, time.perf_counter() - start


def _extract_count(pages: list[bytes]) -> int:
    for page in pages:
        trafilatura.extract(page)
    return len(pages)


def plain_parallel(pages: list[bytes], processes: int) -> float:
    """Seconds for `processes` plain processes (a multiprocessing pool) to extract `pages`: the
    machine's own ceiling for running trafilatura on several cores, measured in the same run."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_extract_count, [pages[:2]] * processes)  # imports and warm-up, not timed
        start = time.perf_counter()
        pool.map(_extract_count, [pages[i::processes] for i in range(processes)])
        return time.perf_counter() - start


def write_pages(directory: Path, datasets: dict[str, dict[str, tuple[bytes, str]]], copies: int) -> None:
    for name, pages in datasets.items():
        for copy in range(copies):
            folder = directory / name
            folder.mkdir(parents=True, exist_ok=True)
            for page, (html, _) in pages.items():
                (folder / f"c{copy:03d}-{page.replace('.gz', '')}").write_bytes(html)


def thresher_run(client, pages_dir: Path, out: Path, files_per_task: int) -> dict:
    config = parse_config({
        "output": str(out),
        "inputs": [{"path": f"{d}/*.html", "format": "html", "source": d.name} for d in sorted(pages_dir.iterdir())],
        "read": {"files_per_task": files_per_task},
        "stages": [{"extract": {}}],
    })
    summary = Runner(config, client, progress=False).run()
    return {s["stage"]: s for s in summary["stages"]}


def thresher_texts(out: Path) -> dict[str, str]:
    texts = {}
    for path in sorted((out / "01-extract").glob("part-*.parquet")):
        for row in pq.read_table(path, columns=["metadata", "text"]).to_pylist():
            texts[json.loads(row["metadata"])["path"]] = row["text"]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=30.0)
    ap.add_argument("--files-per-task", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="40 pages per set, one short run")
    args = ap.parse_args()
    datasets = {"scrapinghub": load_scrapinghub(), "cleaneval": load_cleaneval()}
    if args.quick:
        datasets = {k: dict(list(v.items())[:40]) for k, v in datasets.items()}
        args.runs, args.min_seconds = 1, 3.0
    all_pages = [html for pages in datasets.values() for html, _ in pages.values()]
    n_pages = len(all_pages)

    with tempfile.TemporaryDirectory(prefix="thresher-bench-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        with open_client(workers=args.workers) as client:
            startup = time.perf_counter() - start
            print(f"pages: {n_pages}; local cluster of {args.workers} workers started in {startup:.1f}s")

            # -- quality -----------------------------------------------------------------------
            write_pages(tmp / "once", datasets, 1)
            thresher_run(client, tmp / "once", tmp / "quality", args.files_per_task)
            ours = thresher_texts(tmp / "quality")
            plain_texts, plain_seconds = plain_extract(all_pages)
            plain_by_page = dict(zip([p for pages in datasets.values() for p in pages], plain_texts))
            print(f"\n{'dataset':<12} {'system':<22} {'P':>6} {'R':>6} {'F1':>6}")
            for name, pages in datasets.items():
                for system, got in (("thresher extract", ours), ("trafilatura.extract", plain_by_page)):
                    key = (lambda p: "c000-" + p.replace(".gz", "")) if got is ours else (lambda p: p)
                    p, r, f = prf([(got.get(key(page), ""), truth) for page, (_, truth) in pages.items()])
                    print(f"{name:<12} {system:<22} {p:6.3f} {r:6.3f} {f:6.3f}")

            # -- throughput --------------------------------------------------------------------
            plain_rate = n_pages / plain_seconds
            copies = max(1, math.ceil(args.min_seconds * plain_rate * args.workers / n_pages))
            write_pages(tmp / "many", datasets, copies)
            total = n_pages * copies
            print(f"\nthroughput over {total} pages ({copies} copies of the set), {args.runs} runs each")
            plain_rates, our_rates, pool_rates, reads = [], [], [], []
            for run in range(args.runs):
                _, seconds = plain_extract(all_pages * copies)
                plain_rates.append(total / seconds)
                stages = thresher_run(client, tmp / "many", tmp / f"run{run}", args.files_per_task)
                our_rates.append(total / stages["extract"]["wall_seconds"])
                reads.append(stages["read"]["wall_seconds"])
                pool_rates.append(total / plain_parallel(all_pages * copies, args.workers))
                print(f"  run {run}: plain {plain_rates[-1]:6.1f} docs/s ({seconds:.0f}s)   thresher extract "
                      f"{our_rates[-1]:6.1f} docs/s ({stages['extract']['wall_seconds']:.0f}s)   "
                      f"{args.workers} plain processes {pool_rates[-1]:6.1f} docs/s")
    plain, ours_rate, pool = (statistics.median(r) for r in (plain_rates, our_rates, pool_rates))
    print(f"\nplain trafilatura.extract, 1 process        : {plain:7.1f} docs/s (median)")
    print(f"thresher extract, {args.workers} workers              : {ours_rate:7.1f} docs/s (median; "
          f"read stage {statistics.median(reads):.1f}s and cluster start-up {startup:.1f}s not included)")
    print(f"ratio thresher/plain                        : {ours_rate / plain:7.2f}x")
    print(f"machine ceiling: {args.workers} plain processes (a pool) : {pool:7.1f} docs/s = {pool / plain:.2f}x plain; "
          f"thresher reaches {ours_rate / pool:.0%} of it")


if __name__ == "__main__":
    main()
