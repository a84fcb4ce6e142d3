"""Dedup benchmark: thresher's MinHash LSH stages vs datatrove's MinHash pipeline.

Data: the near-duplicate benchmark of bench/neardup_data.py (real Reuters stories re-issued
with seeded edits; ground truth = same story), written once to .bench/dedup/ as 8 JSONL files.

Quality: pairwise precision/recall/F1 of the duplicate clusters each tool outputs against the
true stories (a pair of documents is predicted duplicate when both end in the same cluster:
thresher's `duplicate_of` in rejected metadata, datatrove's `minhash_cluster_id`).

Speed: end-to-end docs/s of each tool as a separate command on the same files, with the same
5-word shingles, num_perm = 14 x 8 and 14 bands x 8 rows, 2 worker processes each:
`thresher run` (read + minhash_signatures + lsh_buckets + duplicate_clusters +
remove_duplicates, Dask cluster start-up included) and datatrove's four LocalPipelineExecutor
steps (bench/dedup_peer.py). Medians of --runs runs.

Scale: `--docs 1000000` runs thresher alone on that many documents (synthetic expansion, see
neardup_data.py) and prints the wall time and the peak RSS summed over the whole process tree
(client, scheduler, workers; sampled with psutil every 0.2 s).

    .venv/bin/python bench/dedup.py                  # real benchmark, 3 runs each
    .venv/bin/python bench/dedup.py --quick          # 3,000 documents, 1 run each
    .venv/bin/python bench/dedup.py --docs 1000000   # thresher alone at 1M documents
"""

from __future__ import annotations

import sys
from pathlib import Path

# Running `python bench/dedup.py` puts bench/ first on sys.path, where a sibling benchmark named
# like a stdlib module (bench/tokenize.py) would shadow it: keep bench/ last.
BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import time
from collections import Counter

import psutil
import pyarrow.parquet as pq

REPO = BENCH.parent

import neardup_data

CACHE = REPO / ".bench" / "dedup"
BANDS, ROWS, NGRAM = 14, 8, 5
CONFIG = """output: {out}
inputs:
  - {{path: {data}/docs-*.jsonl, format: jsonl, source: bench}}
stages:
  - minhash_signatures: {{ngram: {ngram}, num_perm: {perm}, bands: {bands}, rows: {rows}}}
  - lsh_buckets: {{}}
  - duplicate_clusters: {{}}
  - remove_duplicates: {{}}
"""


def dataset(docs: int | None) -> Path:
    """The benchmark's JSONL files (built once and cached)."""
    directory = CACHE / (f"docs-{docs}" if docs else "real")
    if not (directory / "_done").exists():
        shutil.rmtree(directory, ignore_errors=True)
        print(f"building the benchmark in {directory} ...", flush=True)
        records = neardup_data.build(target_docs=docs, seed=0)
        neardup_data.write_jsonl(records, directory, files=8)
        (directory / "_done").write_text(str(len(records)))
    return directory


def truth(data: Path) -> dict[str, tuple[str, str]]:
    """bench id -> (story, thresher id) for every document."""
    out = {}
    for path in sorted(data.glob("docs-*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                doc = json.loads(line)
                out[doc["id"]] = (doc["story"], f"bench/{path.name}:{line_no}")
    return out


def pairwise_prf(pred: dict[str, str], true: dict[str, str]) -> tuple[float, float, float]:
    """Pairwise precision/recall/F1 of a clustering `pred` (doc -> cluster) against `true`."""
    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    predicted = pairs(Counter(pred.values()))
    actual = pairs(Counter(true.values()))
    both = pairs(Counter((pred[d], true[d]) for d in pred))
    p = both / predicted if predicted else 1.0
    r = both / actual if actual else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def watch_tree(proc: subprocess.Popen, interval: float = 0.2) -> int:
    """Wait for `proc`; return the peak of the RSS summed over it and its descendants."""
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(interval)
    return peak


def timed(cmd: list[str], log: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        peak = watch_tree(proc)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - start, peak


def run_thresher(data: Path, out: Path, workers: int) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = out / "dedup.yaml"
    config.write_text(CONFIG.format(out=out / "run", data=data, ngram=NGRAM, perm=BANDS * ROWS, bands=BANDS, rows=ROWS))
    cmd = [str(REPO / ".venv/bin/thresher"), "run", str(config), "--workers", str(workers), "--no-progress"]
    return timed(cmd, out / "log.txt")


def run_datatrove(data: Path, out: Path, workers: int) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, str(REPO / "bench" / "dedup_peer.py"), str(data), str(out), "--workers", str(workers),
           "--bands", str(BANDS), "--rows", str(ROWS), "--ngram", str(NGRAM)]
    return timed(cmd, out / "log.txt")


def thresher_clusters(out: Path, ids: dict[str, tuple[str, str]]) -> dict[str, str]:
    """bench id -> cluster (the kept representative's thresher id) for every document."""
    by_thresher = {tid: bid for bid, (_, tid) in ids.items()}
    cluster = {bid: tid for bid, (_, tid) in ids.items()}
    stage = next((out / "run").glob("*-remove_duplicates"))
    for path in sorted((stage / "rejected").glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "metadata"])
        for tid, meta in zip(table["id"].to_pylist(), table["metadata"].to_pylist()):
            cluster[by_thresher[tid]] = json.loads(meta)["duplicate_of"]
    return cluster


def datatrove_clusters(out: Path, ids: dict[str, tuple[str, str]]) -> dict[str, str]:
    cluster = {bid: bid for bid in ids}
    for path in sorted((out / "output").glob("*.jsonl.gz")) + sorted((out / "removed").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                cid = doc.get("metadata", {}).get("minhash_cluster_id", -1)
                if cid != -1:
                    cluster[doc["id"]] = f"c{cid}"
    return cluster


def stage_seconds(out: Path) -> str:
    stats = json.loads((out / "run" / "stats.json").read_text())
    return ", ".join(f"{s['stage']} {s['wall_seconds']:.1f}s" for s in stats["stages"])


def compare(args: argparse.Namespace) -> None:
    data = dataset(3000 if args.quick else None)
    ids = truth(data)
    true = {bid: story for bid, (story, _) in ids.items()}
    n = len(ids)
    print(f"{n} documents, {len(set(true.values()))} stories; 5-word shingles, {BANDS} bands x {ROWS} rows, "
          f"{args.workers} workers (machine shared: timings are noisy)")
    times: dict[str, list[float]] = {"thresher": [], "datatrove": []}
    for r in range(args.runs):
        for name, fn in (("thresher", run_thresher), ("datatrove", run_datatrove)):
            seconds, _ = fn(data, CACHE / "runs" / name, args.workers)
            times[name].append(seconds)
            print(f"  run {r + 1}: {name:9s} {seconds:6.1f}s", flush=True)
    print(f"  thresher stages (last run): {stage_seconds(CACHE / 'runs' / 'thresher')}")
    rows = {"thresher": thresher_clusters(CACHE / "runs" / "thresher", ids),
            "datatrove": datatrove_clusters(CACHE / "runs" / "datatrove", ids)}
    rates = {}
    print(f"\n{'tool':10s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'seconds':>8s} {'docs/s':>8s}")
    for name, pred in rows.items():
        p, r, f1 = pairwise_prf(pred, true)
        seconds = statistics.median(times[name])
        rates[name] = (f1, n / seconds)
        print(f"{name:10s} {p:9.4f} {r:7.4f} {f1:6.4f} {seconds:8.1f} {n / seconds:8.0f}")
    (f_t, r_t), (f_d, r_d) = rates["thresher"], rates["datatrove"]
    print(f"\nF1 thresher - datatrove = {f_t - f_d:+.4f};  docs/s thresher / datatrove = {r_t / r_d:.2f}x "
          f"(medians of {args.runs})")


def scale(args: argparse.Namespace) -> None:
    data = dataset(args.docs)
    out = CACHE / "runs" / f"thresher-{args.docs}"
    seconds, peak = run_thresher(data, out, args.workers)
    ids = truth(data)
    p, r, f1 = pairwise_prf(thresher_clusters(out, ids), {b: s for b, (s, _) in ids.items()})
    print(f"thresher, {len(ids)} documents, {args.workers} workers: {seconds:.1f}s wall, "
          f"{len(ids) / seconds:.0f} docs/s, peak RSS of all processes {peak / 2**30:.2f} GiB")
    print(f"  stages: {stage_seconds(out)}")
    print(f"  pairwise precision {p:.4f} recall {r:.4f} F1 {f1:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3,000 documents, 1 run")
    ap.add_argument("--docs", type=int, help="run thresher alone on this many documents (RSS + time)")
    ap.add_argument("--runs", type=int, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    scale(args) if args.docs else compare(args)


if __name__ == "__main__":
    main()
