"""Benchmark: `classify` stage throughput (docs/s) with 1 and 2 Dask workers, next to the
same per-part function (`run_map_part`: read, classify, write) called in-process on the same
partitions (no Dask: the plain baseline).

A small domain model is trained on an AG News slice; the documents are real web and news
text (Common Crawl sample + BBC + AG News) repeated to --docs. Cluster start-up is timed
apart from the stage and workers are warmed up (steady state); each figure is the median of
--reps runs, the three contenders interleaved.

`--model logistic` trains the same model with the TF-IDF + logistic-regression backend.

    .venv/bin/python bench/classify.py [--quick] [--docs 60000] [--reps 3] [--model logistic]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The repo root instead of bench/ (the script's folder, whose filters.py and tokenize.py would
# shadow the `filters` package and the standard library's tokenize).
sys.path[0] = str(REPO)

import argparse
import contextlib
import gzip
import json
import statistics
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from filters.classifier import ClassifierConfig, train_classifier
from filters.classify import Classify
from pipeline.cluster import open_client
from pipeline.record import DOCUMENT_SCHEMA
from pipeline.runner import run_map_part

DATA = REPO.parent / "shared" / "data"


def texts() -> list[str]:
    files = [*(DATA / "web_text_cc2019_sample").glob("*.jsonl.gz"), DATA / "fin_vs_general_bbc" / "documents.jsonl",
             DATA / "news_agnews_test" / "ag_news_test.jsonl.gz"]
    out = []
    for f in files:
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        # split on "\n" only: str.splitlines() would also cut at U+2028 inside a JSON string
        out += [json.loads(line)["text"] for line in data.decode().split("\n") if line.strip()]
    return [t for t in out if t]


def write_parts(root: Path, n_docs: int, per_part: int = 1000) -> list[str]:
    pool = texts()
    names = []
    for start in range(0, n_docs, per_part):
        rows = [{"id": f"d{i}", "text": pool[i % len(pool)]} for i in range(start, min(start + per_part, n_docs))]
        names.append(f"part-{start // per_part:05d}.parquet")
        pq.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), root / names[-1])
    return names


def train_model(root: Path, backend: str = "fasttext") -> Path:
    ag = str(DATA / "news_agnews_test" / "ag_news_test.jsonl.gz")
    config = ClassifierConfig.model_validate({
        "positive_label": "financial", "model": backend, "fasttext": {"dim": 64, "epoch": 5},
        "sources": [{"path": ag, "format": "jsonl", "label": "financial", "where": {"category": "business"}},
                    {"path": ag, "format": "jsonl", "label": "general", "where": {"category": ["world", "sports"]}}]})
    train_classifier(config, root / "model")
    return root / "model" / "model.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 documents, 2 repetitions")
    parser.add_argument("--docs", type=int, default=60_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--model", choices=["fasttext", "logistic"], default="fasttext", help="the classifier backend")
    args = parser.parse_args()
    n_docs, reps = (4000, 2) if args.quick else (args.docs, args.reps)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        parts = write_parts(root / "in", n_docs)
        stage = Classify(Classify.Params(domain_model=str(train_model(root, args.model)),
                                         quality_model=str(root / "model" / "model.bin")))
        stage.check()
        startup: dict[int, float] = {}
        paths = [str(root / "in" / p) for p in parts]

        def inline_run(out: Path) -> None:
            for path, part in zip(paths, parts):
                run_map_part(path, str(out), part, stage)

        clients = {}
        with contextlib.ExitStack() as stack:
            for workers in (1, 2):
                start = time.perf_counter()
                clients[workers] = stack.enter_context(open_client(workers=workers))
                startup[workers] = time.perf_counter() - start
                # warm-up, not timed: imports and a model load on every worker
                client = clients[workers]
                client.gather(client.map(run_map_part, paths[:workers], [str(root / "warm")] * workers, parts[:workers],
                                         stage=stage, pure=False))
            inline_run(root / "warm")
            runs: dict = {0: [], 1: [], 2: []}
            for r in range(reps):  # interleaved, so that a shared machine's drift hits all alike
                start = time.perf_counter()
                inline_run(root / f"out-0-{r}")
                runs[0].append(time.perf_counter() - start)
                for workers, client in clients.items():
                    out = root / f"out-{workers}-{r}"
                    start = time.perf_counter()
                    client.gather(client.map(run_map_part, paths, [str(out)] * len(parts), parts,
                                             stage=stage, pure=False))
                    runs[workers].append(time.perf_counter() - start)
        inline = statistics.median(runs[0])
        print(f"{args.model}: {n_docs} docs, {len(parts)} parts; medians of {reps} interleaved runs (noisy)")
        print(f"  in-process, no Dask:  {n_docs / inline:>9.0f} docs/s  (run_map_part on every part in turn)")
        for workers in (1, 2):
            seconds = statistics.median(runs[workers])
            print(f"  Dask, {workers} worker(s):   {n_docs / seconds:>9.0f} docs/s  (cluster start-up "
                  f"{startup[workers]:.1f}s, ratio to in-process {inline / seconds:.2f}x)")
        print(f"  2 workers vs 1: {statistics.median(runs[1]) / statistics.median(runs[2]):.2f}x")


if __name__ == "__main__":
    main()
