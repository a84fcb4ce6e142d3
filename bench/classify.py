"""Benchmark: `classify` stage throughput (docs/s) with 1 and 2 Dask workers, next to the
same stage called in-process on the same partitions (no Dask: the plain baseline).

A small domain model is trained on an AG News slice; the documents are real web and news
text (Common Crawl sample + BBC + AG News) repeated to --docs. Cluster start-up is timed
apart from the stage (steady state); each figure is the median of --reps runs.

    .venv/bin/python bench/classify.py [--quick] [--docs 20000] [--reps 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The repo root instead of bench/ (the script's folder, whose filters.py and tokenize.py would
# shadow the `filters` package and the standard library's tokenize).
sys.path[0] = str(REPO)

import argparse
import gzip
import json
import statistics
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from filters.classifier import ClassifierConfig, train_classifier
from filters.classify import Classify
from pipeline.record import DOCUMENT_SCHEMA
from pipeline.runner import open_client, run_map_part

DATA = REPO.parent / "shared" / "data"


def texts() -> list[str]:
    files = [*(DATA / "web_text_cc2019_sample").glob("*.jsonl.gz"), DATA / "fin_vs_general_bbc" / "documents.jsonl",
             DATA / "news_agnews_test" / "ag_news_test.jsonl.gz"]
    out = []
    for f in files:
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        out += [json.loads(line)["text"] for line in data.decode().splitlines()]
    return [t for t in out if t]


def write_parts(root: Path, n_docs: int, per_part: int = 1000) -> list[str]:
    pool = texts()
    names = []
    for start in range(0, n_docs, per_part):
        rows = [{"id": f"d{i}", "text": pool[i % len(pool)]} for i in range(start, min(start + per_part, n_docs))]
        names.append(f"part-{start // per_part:05d}.parquet")
        pq.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), root / names[-1])
    return names


def train_model(root: Path) -> Path:
    ag = str(DATA / "news_agnews_test" / "ag_news_test.jsonl.gz")
    config = ClassifierConfig.model_validate({
        "positive_label": "financial", "fasttext": {"dim": 64, "epoch": 5},
        "sources": [{"path": ag, "format": "jsonl", "label": "financial", "where": {"category": "business"}},
                    {"path": ag, "format": "jsonl", "label": "general", "where": {"category": ["world", "sports"]}}]})
    train_classifier(config, root / "model")
    return root / "model" / "model.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 documents, 2 repetitions")
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    n_docs, reps = (4000, 2) if args.quick else (args.docs, args.reps)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        parts = write_parts(root / "in", n_docs)
        stage = Classify(Classify.Params(domain_model=str(train_model(root)), quality_model=str(root / "model" / "model.bin")))
        stage.check()
        inline = []
        for _ in range(reps):
            start = time.perf_counter()
            for p in parts:
                stage.process(pq.read_table(root / "in" / p))
            inline.append(time.perf_counter() - start)
        print(f"{n_docs} docs, {len(parts)} parts; medians of {reps} runs (shared machine: noisy)")
        print(f"  in-process, no Dask:  {n_docs / statistics.median(inline):>9.0f} docs/s")
        for workers in (1, 2):
            start = time.perf_counter()
            with open_client(workers=workers) as client:
                startup = time.perf_counter() - start
                runs = []
                for r in range(reps):
                    out = root / f"out-{workers}-{r}"
                    start = time.perf_counter()
                    futures = client.map(run_map_part, [str(root / "in" / p) for p in parts], [str(out)] * len(parts),
                                         parts, stage=stage, pure=False)
                    client.gather(futures)
                    runs.append(time.perf_counter() - start)
            rate = n_docs / statistics.median(runs)
            print(f"  Dask, {workers} worker(s):   {rate:>9.0f} docs/s  (cluster start-up {startup:.1f}s, "
                  f"ratio to in-process {statistics.median(inline) / statistics.median(runs):.2f}x)")


if __name__ == "__main__":
    main()
