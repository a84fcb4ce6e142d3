"""`thresher stats` benchmark: wall time and peak memory on a folder of 1,000,000 short documents.

Data: synthetic short documents (20-80 words from a 5,000-word Zipf vocabulary, with source,
domain, language, URL and quality_score columns), written once to .bench/stats/<N>/ as
Parquet files of 50,000 documents and reused.

Measured, each as a separate command on the same files, medians of --runs runs:
- `thresher stats DIR --workers 2` (Dask LocalCluster start-up included), with the peak RSS
  summed over its whole process tree (client, scheduler, nanny and worker processes; sampled
  with psutil every 0.05 s);
- a plain baseline: one pandas process that loads every file into memory and computes the
  same exact counts (documents, bytes, words, per-domain/source/language counts).
The report's memory is bounded: it is measured at two sizes (N/4 and N) and should not grow
with N, while the load-everything baseline does.

    .venv/bin/python bench/stats.py            # 250,000 and 1,000,000 documents, 3 runs each
    .venv/bin/python bench/stats.py --quick    # 25,000 and 100,000 documents, 1 run each
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/stats.py` puts bench/ first on sys.path, where bench/tokenize.py would shadow
# the standard library's tokenize: keep bench/ last.
BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

import argparse
import json
import shutil
import statistics
import subprocess
import time

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

REPO = BENCH.parent
CACHE = REPO / ".bench" / "stats"
FILE_DOCS = 50_000
BASELINE = """
import sys, glob, pandas as pd
frame = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob(sys.argv[1] + "/*.parquet"))])
text = frame["text"]
out = {"documents": len(frame), "bytes": int(text.str.encode("utf-8").str.len().sum()),
       "words": int(text.str.split().str.len().sum())}
for column in ("domain", "source", "language"):
    out[column] = frame[column].fillna("(none)").value_counts().to_dict()
print(out["documents"], out["bytes"], out["words"])
"""


def make_documents(n: int) -> Path:
    """N short documents as Parquet under .bench/stats/<N>/ (written once, then reused)."""
    folder = CACHE / str(n)
    if (folder / "_done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    vocabulary = np.array([f"w{i}" + "abcdefgh"[i % 8] * (1 + i % 5) for i in range(5000)])
    zipf = 1.0 / np.arange(1, 5001)
    zipf /= zipf.sum()
    for start in range(0, n, FILE_DOCS):
        size = min(FILE_DOCS, n - start)
        lengths = rng.integers(20, 81, size)
        words = vocabulary[rng.choice(5000, size=int(lengths.sum()), p=zipf)]
        texts = [" ".join(chunk) for chunk in np.split(words, np.cumsum(lengths)[:-1])]
        ids = [f"doc-{start + i}" for i in range(size)]
        table = pa.table({
            "id": ids, "text": texts, "url": [f"https://site{i % 997}.example/{i}" for i in range(start, start + size)],
            "source": rng.choice(["web", "news", "books"], size), "domain": rng.choice(["financial", "general"], size),
            "language": rng.choice(["en", "en", "en", "de", "fr"], size), "quality_score": rng.random(size)})
        pq.write_table(table, folder / f"part-{start // FILE_DOCS:05d}.parquet", compression="zstd")
    (folder / "_done").touch()
    return folder


def measure(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB summed over the process tree, stdout) of `command`."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read()
    if proc.returncode:
        raise RuntimeError(f"{command[:4]} failed with exit code {proc.returncode}")
    return time.perf_counter() - start, peak / 2**20, out


def median_of(runs: int, command: list[str]) -> tuple[float, float, str]:
    results = [measure(command) for _ in range(runs)]
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results), results[-1][2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="25,000 and 100,000 documents, 1 run")
    parser.add_argument("--docs", type=int, default=1_000_000, help="the large size (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    large = 100_000 if args.quick else args.docs
    runs = 1 if args.quick else args.runs
    print(f"thresher stats benchmark: medians of {runs} run(s); 2 worker processes; the machine may be shared")
    rows = []
    for n in (large // 4, large):
        data = make_documents(n)
        out = CACHE / f"report-{n}"
        wall, rss, _ = median_of(runs, [sys.executable, "-m", "pipeline.cli", "stats", str(data), "--output", str(out),
                                        "--workers", "2"])
        stats = json.loads((out / "stats.json").read_text())
        assert stats["overview"]["documents_final"] == n, "the report must count every document"
        base_wall, base_rss, _ = median_of(runs, [sys.executable, "-c", BASELINE, str(data)])
        rows.append((n, wall, rss, base_wall, base_rss))
        print(f"{n:>10,} docs  thresher stats {wall:7.1f} s {n / wall:>9,.0f} docs/s  peak RSS {rss:7.0f} MiB   |   "
              f"pandas load-all {base_wall:6.1f} s  peak RSS {base_rss:7.0f} MiB   "
              f"(time x{wall / base_wall:.2f}, memory x{rss / base_rss:.2f})")
    (small, _, rss_small, _, base_small), (big, _, rss_big, _, base_big) = rows
    print(f"peak RSS growth from {small:,} to {big:,} documents: thresher stats x{rss_big / rss_small:.2f}, "
          f"pandas load-all x{base_big / base_small:.2f}")


if __name__ == "__main__":
    main()
