"""Lineage benchmark: how long does `thresher trace` take to answer on a large run?

Data and run: bench/scale.py's synthetic web-like documents (JSONL, two domains), by default
of ~300 bytes (`--median-bytes`), through bench/scale.py's config less its MinHash stages:
read -> bench_score -> exact_dedup -> select (keep_top 0.9) -> mix (51/49, repeats) -> tokenize
(bench/scale.py's small tokenizer), on a LocalCluster of 2 workers. The run is kept under
.bench/trace/run-<docs>-<bytes>b/ and reused by later invocations (delete the folder to rebuild
it).

Queries, each answered from a fresh `RunLayout` (the outputs only, nothing cached between
queries) and timed in this process, then once more through the CLI in a new process
(Python start-up and imports included):

- `--doc` a document that reached the shards (a sidecar row in the middle of a shard);
- `--doc` a document exact_dedup removed;
- `--shard DOMAIN/shard-00000 --index N`;
- `--text` a snippet of a document in the final stage (a scan of its text column).

    PYTHONPATH=. .venv/bin/python bench/trace.py --docs 1000000
    PYTHONPATH=. .venv/bin/python bench/trace.py --docs 100000 --median-bytes 3000
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

import argparse
import os
import resource
import statistics
import subprocess
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
import scale
import yaml

REPO = scale.REPO
CACHE = REPO / ".bench" / "trace"
# bench/scale.py's run without MinHash dedup: lineage through exact_dedup, select, mix and tokenize
FUZZY_DEDUP = {"minhash_signatures", "lsh_buckets", "duplicate_clusters", "remove_duplicates"}


def build(n_docs: int, median: int, workers: int, docs_per_part: int | None) -> Path:
    """The run's output folder, built unless a finished one is there."""
    out = CACHE / (f"run-{n_docs}-{median}b" + (f"-{docs_per_part}" if docs_per_part else ""))
    if (out / "stats.json").exists():
        print(f"reusing {out}")
        return out
    from pipeline.cluster import open_client
    from pipeline.config import parse_config
    from pipeline.runner import Runner

    scale.register_score_stage()
    start = time.perf_counter()
    data, model = scale.generate(n_docs, median), scale.tokenizer_model()
    print(f"data: {data} ({time.perf_counter() - start:.0f}s)")
    raw = scale.run_config(out, data, model, docs_per_part)  # more, smaller parts: as many as a larger run has
    raw["stages"] = [stage for stage in raw["stages"] if next(iter(stage)) not in FUZZY_DEDUP]
    config = parse_config(raw)
    start = time.perf_counter()
    with open_client(workers=workers) as client:
        Runner(config, client, progress=False).run()
    print(f"run: {out} ({time.perf_counter() - start:.0f}s)")
    return out


def queries(out: Path) -> dict[str, list[str]]:
    """CLI arguments of the four queries, picked from the run's outputs."""
    tokenize = sorted(out.glob("*-tokenize"))[-1]
    sidecar = sorted(tokenize.glob("general/shard-*.docs.parquet"))[0]
    table = pq.read_table(sidecar, columns=["sequence", "original_id"])
    middle = table.num_rows // 2
    shard = f"general/{sidecar.name.removesuffix('.docs.parquet')}"
    dedup = sorted(out.glob("*-exact_dedup"))[0]
    removed = pq.read_table(sorted((dedup / "rejected").glob("*.parquet"))[0], columns=["id"]).column("id")[0].as_py()
    final = sorted(out.glob("*-mix"))[0]
    text = pq.read_table(sorted(final.glob("part-*.parquet"))[-1], columns=["text"]).column("text")
    snippet = " ".join(text[len(text) // 2].as_py().split()[3:9])
    assert pc.sum(pc.match_substring(text, snippet)).as_py() >= 1
    return {"doc (in shards)": ["--doc", table.column("original_id")[middle].as_py()],
            "doc (removed by exact_dedup)": ["--doc", removed],
            "shard --index": ["--shard", shard, "--index", str(middle)],
            "text": ["--text", snippet, "--limit", "1"]}


def answer(out: Path, args: list[str]) -> dict:
    from pipeline.trace.lineage import trace_document, trace_sequence, trace_text
    from pipeline.trace.lookup import RunLayout

    layout = RunLayout.open(str(out))
    if args[0] == "--doc":
        return trace_document(layout, args[1])
    if args[0] == "--shard":
        return trace_sequence(layout, args[1], int(args[3]))
    return trace_text(layout, args[1], int(args[3]))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--median-bytes", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--docs-per-part", type=int, help="read.max_docs_per_part (default: parts of 128 MiB)")
    parser.add_argument("--repeat", type=int, default=3, help="in-process answers per query (median printed)")
    args = parser.parse_args()
    out = build(args.docs, args.median_bytes, args.workers, args.docs_per_part)
    stats = yaml.safe_load((out / "stats.json").read_text())
    parts = sum(1 for _ in out.rglob("*.parquet"))
    print(f"run: {stats['summary']['documents_read']:,} documents read, {len(stats['stages'])} stages, "
          f"{parts} Parquet files")
    print(f"{'query':<30} {'in-process s':>12} {'CLI s':>7} {'CLI cpu s':>9}  fate")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name, cli in queries(out).items():
        times, trace = [], None
        for _ in range(args.repeat):
            start = time.perf_counter()
            trace = answer(out, cli)
            times.append(time.perf_counter() - start)
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "trace", str(out), *cli, "--json"],
                              capture_output=True, text=True, env=env, cwd=REPO)
        wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
        assert proc.returncode == 0, proc.stderr[-500:]
        print(f"{name:<30} {statistics.median(times):>12.2f} {wall:>7.2f} {cpu:>9.2f}  {trace['fate']}")


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (the CLI runs): on a
    loaded machine, what the answer costs apart from waiting for a core."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
