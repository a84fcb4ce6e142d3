"""datatrove's MinHash dedup pipeline, run as the peer in bench/dedup.py (test-only dependency).

The four datatrove steps, each a LocalPipelineExecutor run after the previous one:
`MinhashDedupSignature` (one task per input file) -> `MinhashDedupBuckets` (one task per
bucket) -> `MinhashDedupCluster` (one task: datatrove clusters on a single task) ->
`MinhashDedupFilter` (kept documents to OUT/output, removed ones to OUT/removed, both with
`minhash_cluster_id` in their metadata). Same n-grams, bands and rows as thresher's run and
datatrove's own text normalisation and word tokenizer. Shingles are hashed with datatrove's
32-bit SHA-1 (thresher's and datasketch's hash): its default, xxhash64, fails on `str`
input with the installed xxhash 4.x ("Strings must be encoded before hashing").

    .venv/bin/python bench/dedup_peer.py INPUT_DIR OUT_DIR --workers 2 --bands 14 --rows 8 --ngram 5
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ must not shadow stdlib modules (a sibling bench/tokenize.py would): drop it from sys.path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig


def run(input_dir: Path, out: Path, workers: int, bands: int, rows: int, ngram: int) -> None:
    config = MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows, seed=1,
                           hash_config=HashConfig(precision=32, hash_fc="sha1"))
    files = len(list(input_dir.glob("*.jsonl")))

    def reader():
        return JsonlReader(str(input_dir), glob_pattern="*.jsonl", text_key="text", id_key="id")

    steps = [
        ([reader(), MinhashDedupSignature(output_folder=str(out / "signatures"), config=config)], files),
        ([MinhashDedupBuckets(input_folder=str(out / "signatures"), output_folder=str(out / "buckets"),
                              config=config)], bands),
        ([MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove_ids"),
                              config=config, save_cluster_id=True)], 1),
        ([reader(), MinhashDedupFilter(input_folder=str(out / "remove_ids"), load_cluster_ids=True,
                                       exclusion_writer=JsonlWriter(str(out / "removed"))),
          JsonlWriter(str(out / "output"))], files),
    ]
    for index, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                              logging_dir=str(out / "logs" / f"step{index}")).run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--ngram", type=int, default=5)
    args = ap.parse_args()
    run(args.input_dir, args.out, args.workers, args.bands, args.rows, args.ngram)


if __name__ == "__main__":
    main()
