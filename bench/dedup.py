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
    .venv/bin/python bench/dedup.py --incremental    # two runs against an index vs one run

Incremental: run 1 deduplicates files 0-3 into a fresh index (`index:` on minhash_signatures),
run 2 files 4-7 against it; the pairwise precision/recall/F1 of both runs' clusters together
(a run-2 copy of a run-1 story points at the run-1 document it duplicates) against one run
over all files, and run 2's time with and without the index.
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
import os
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


def run_halves(data: Path, out: Path, workers: int, files: list[str], index: Path | None) -> float:
    """`thresher run` (read + the four MinHash stages) on `files` of the benchmark, with `index`
    set on minhash_signatures if given; returns the wall seconds of the four stages."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = CONFIG.format(out=out / "run", data=data, ngram=NGRAM, perm=BANDS * ROWS, bands=BANDS, rows=ROWS)
    line = f"  - {{path: {data}/docs-*.jsonl, format: jsonl, source: bench}}\n"
    config = config.replace(line, "".join(line.replace("docs-*.jsonl", name) for name in files))
    if index is not None:
        config = config.replace(f"rows: {ROWS}}}", f"rows: {ROWS}, index: {index}}}")
    (out / "dedup.yaml").write_text(config)
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(out / "dedup.yaml"), "--workers", str(workers),
           "--no-progress"]
    with (out / "log.txt").open("w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ,
                                                                                          "PYTHONPATH": str(REPO)})
    if done.returncode:
        raise SystemExit(f"thresher failed ({done.returncode}); see {out / 'log.txt'}")
    stages = json.loads((out / "run" / "stats.json").read_text())["stages"][1:]
    return sum(s["wall_seconds"] for s in stages)


def incremental(args: argparse.Namespace) -> None:
    """The benchmark in two runs against an index (the first half of the files, then the second)
    against one run over all of it: the same pairwise quality, and what reading the index costs."""
    data = dataset(3000 if args.quick else None)
    ids = truth(data)
    true = {bid: story for bid, (story, _) in ids.items()}
    root = CACHE / "incremental"
    index = root / "index"
    shutil.rmtree(index, ignore_errors=True)
    names = [p.name for p in sorted(data.glob("docs-*.jsonl"))]
    first, second = names[: len(names) // 2], names[len(names) // 2:]
    whole = run_halves(data, root / "one-run", args.workers, names, None)
    one = run_halves(data, root / "run-1", args.workers, first, index)
    two = run_halves(data, root / "run-2", args.workers, second, index)
    alone = run_halves(data, root / "run-2-alone", args.workers, second, None)
    clusters = {bid: tid for bid, (_, tid) in ids.items()}
    for name in ("run-1", "run-2"):  # each run's removals; a kept document is its own cluster
        clusters.update({bid: rep for bid, rep in thresher_clusters(root / name, ids).items() if rep != ids[bid][1]})
    entries = [c["entries"] for c in json.loads((index / "minhash" / "_index.json").read_text())["commits"]]
    print(f"{len(ids)} documents; MinHash stages' wall time (2 workers), index entries per commit {entries}")
    for label, pred, seconds in (("one run over all files", thresher_clusters(root / "one-run", ids), whole),
                                 ("run 1 (files 0-3) + run 2 (files 4-7) via the index", clusters, one + two)):
        p, r, f1 = pairwise_prf(pred, true)
        print(f"  {label:<52} precision {p:.4f} recall {r:.4f} F1 {f1:.4f}  {seconds:6.1f}s")
    print(f"  run 2 against the index {two:.1f}s vs run 2 alone {alone:.1f}s: reading {entries[0]} entries "
          f"costs {two - alone:+.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incremental", action="store_true",
                    help="two runs against an index (halves of the files) vs one run: quality and time")
    ap.add_argument("--quick", action="store_true", help="3,000 documents, 1 run")
    ap.add_argument("--docs", type=int, help="run thresher alone on this many documents (RSS + time)")
    ap.add_argument("--runs", type=int, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    if args.incremental:
        incremental(args)
    else:
        scale(args) if args.docs else compare(args)


if __name__ == "__main__":
    main()
