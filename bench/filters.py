"""Heuristic filter benchmark: thresher's gopher_repetition -> gopher_quality -> c4_quality ->
fineweb_quality chain vs datatrove's filters of the same names and thresholds.

Documents: thresher's `extract` stage over ../shared/data/extraction_cleaneval/html (517 pages)
and ../shared/data/web_text_cc2019_sample (488 Common Crawl texts, passed through), run once
and cached in .bench/filters-extract/. Both chains run in this one process over the same texts,
one document at a time through all four filters (a dropped document leaves the chain; C4 hands
its cleaned text on), calling each filter directly (thresher's `process_document`, datatrove's
`filter`), so neither pipeline's I/O is timed. Each tool's per-document cache of split text is
cleared before each run; their per-chunk tokenizer caches (spaCy's, thresher's) stay warm
after the first run, as in a long job. Prints docs/s and MB/s (input text) per chain, medians
of --repeat runs, and the ratio.

    .venv/bin/python bench/filters.py             # all documents, 3 runs each
    .venv/bin/python bench/filters.py --quick     # 150 documents, 3 runs each
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/filters.py` puts bench/ first on sys.path, where bench/tokenize.py would shadow
# the standard library's tokenize: keep bench/ last.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(REPO), str(BENCH)]

import argparse
import statistics
import time

import pyarrow.parquet as pq

CACHE = REPO / ".bench" / "filters-extract"
STAGES = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
INPUTS = [
    {"path": "../shared/data/extraction_cleaneval/html/*.html.gz", "format": "html", "source": "cleaneval"},
    {"path": "../shared/data/web_text_cc2019_sample/*.jsonl.gz", "format": "jsonl", "source": "cc2019"},
]


def extracted_documents() -> list[tuple[str, str]]:
    """(id, text) of every document thresher's extract stage keeps; extracts once into CACHE."""
    from pipeline.cluster import open_client
    from pipeline.config import parse_config
    from pipeline.runner import Runner

    directory = CACHE / "01-extract"
    if not (directory / "_manifest.json").exists():
        config = parse_config({"output": str(CACHE), "inputs": INPUTS, "stages": [{"extract": {}}]})
        with open_client(workers=2) as client:
            Runner(config, client, progress=False).run()
    docs = []
    for part in sorted(directory.glob("part-*.parquet")):
        table = pq.read_table(part, columns=["id", "text"])
        docs += zip(table.column("id").to_pylist(), table.column("text").to_pylist())
    return docs


def thresher_chain():
    from filters.words import words
    from pipeline.record import Document
    from pipeline.stage import Reject, build_stage
    from pipeline.stats import StageStats

    stages = [build_stage(name, {}) for name in STAGES]

    def run(docs: list[tuple[str, str]]) -> int:
        words.cache_clear()
        kept, stats = 0, StageStats()
        for doc_id, text in docs:
            doc = Document(id=doc_id, text=text)
            for stage in stages:
                doc = stage.process_document(doc, stats)
                if isinstance(doc, Reject):
                    break
            else:
                kept += 1
        return kept

    return run


def datatrove_chain():
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.utils.text import split_into_parts

    filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]

    def run(docs: list[tuple[str, str]]) -> int:
        split_into_parts.cache_clear()
        kept = 0
        for doc_id, text in docs:
            doc = Document(text=text, id=doc_id)
            kept += all(f.filter(doc) is True for f in filters)  # `all` stops at the first drop
        return kept

    return run


def measure(name: str, run, docs: list[tuple[str, str]], repeat: int) -> float:
    seconds, kept = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        kept = run(docs)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    megabytes = sum(len(text.encode()) for _, text in docs) / 1e6
    print(f"{name:<10} kept {kept:>5}/{len(docs)}  {len(docs) / median:9.1f} docs/s  {megabytes / median:7.3f} MB/s"
          f"  (median of {repeat}: {median:.2f}s)", flush=True)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="150 documents")
    parser.add_argument("--repeat", type=int, default=3, help="runs per chain (median reported)")
    args = parser.parse_args()
    docs = extracted_documents()
    if args.quick:
        docs = docs[:: max(len(docs) // 150, 1)][:150]
    megabytes = sum(len(text.encode()) for _, text in docs) / 1e6
    print(f"{len(docs)} documents, {megabytes:.2f} MB of text; chain: {' -> '.join(STAGES)}")
    ours = measure("thresher", thresher_chain(), docs, args.repeat)
    theirs = measure("datatrove", datatrove_chain(), docs, args.repeat)
    print(f"speed-up: {theirs / ours:.1f}x (thresher docs/s / datatrove docs/s)")


if __name__ == "__main__":
    main()
