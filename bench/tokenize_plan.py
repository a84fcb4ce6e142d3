"""Tokenize's planning alone: the distributed planner (`tokenization.plan`) against the
one-process planner it replaced (`tests/tokenization/oracle_plan.py`, run as one worker task
as the stage used to), on the same synthetic encoded parts, in the same run.

Data: `docs.parquet` parts as the encode tasks write them (7,500 documents a part; 45%
financial with a second mix epoch for some, 55% general; 50-1,500 tokens a document), at each
--docs size. Both planners get a 1% validation fraction, a 51/49 mixture and 50M-token shards,
on a LocalCluster of 2 worker processes. Printed per size and planner: wall seconds, the
client process's and the largest worker's peak RSS above their idle level (psutil, every
0.1 s), and whether the two planners' shard plans and trim reports are identical.

    PYTHONPATH=. .venv/bin/python bench/tokenize_plan.py --docs 1200000 4800000
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ off the front of sys.path: bench/tokenize.py would shadow the standard library's module.
BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import argparse
import os
import shutil
import threading
import time
from types import SimpleNamespace

import numpy as np
import psutil
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import storage
from pipeline.cluster import open_client
from pipeline.io import write_parquet
from tests.tokenization import oracle_plan
from tokenization import plan
from tokenization.encode import DOCS_SCHEMA

WORK = REPO / ".bench" / "tokenize_plan"
PER_PART = 7_500
FRACTION, TARGETS, SHARD_TOKENS = 0.01, {"financial": 0.51, "general": 0.49}, 50_000_000


def write_parts(folder: Path, n_docs: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    stems = []
    for start in range(0, n_docs, PER_PART):
        n = min(PER_PART, n_docs - start)
        fin = rng.random(n) < 0.45
        epoch = np.where(fin, rng.integers(0, 2, n), 0).astype(np.int32)
        ids = [f"d{start + i}" for i in range(n)]
        tokens = rng.integers(50, 1500, n)
        domain = np.where(fin, "financial", "general")
        index = np.zeros(n, np.int64)
        for name in ("financial", "general"):
            index[domain == name] = np.arange(int((domain == name).sum()))
        rank = (epoch.astype(np.int64) << 40) | rng.integers(0, 1 << 40, n)
        keys = [rng.integers(0, 1 << 63, n).astype(np.uint64) * 2 for _ in range(2)]  # valid_key, trim_key
        table = pa.table([np.arange(n), ids, domain, np.where(fin, "fin_news", "web"), ids, epoch, rank, index,
                          tokens, tokens * 4, *keys], schema=DOCS_SCHEMA)
        stems.append(f"part-{start // PER_PART:05d}")
        write_parquet(table, folder / stems[-1] / "docs.parquet")
    return stems


def reference(work: str, stems: list[str]) -> dict:
    """The one-process planner on a worker, as the stage ran it: every part's numbers in one table."""
    tables = []
    for i, stem in enumerate(stems):
        table = storage.read_table(storage.join(work, stem, "docs.parquet"))
        tables.append(table.append_column("part", pa.array(np.full(table.num_rows, i, dtype=np.int32))))
    out = oracle_plan.oracle(pa.concat_tables(tables), stems, FRACTION, TARGETS, set(), SHARD_TOKENS)
    return {"plans": out["plans"], "correction": out["correction"]}


class Peaks:
    """Peak RSS of this process and of the workers, sampled in a thread."""

    def __init__(self, pids: list[int]):
        self.me, self.workers = psutil.Process(), [psutil.Process(p) for p in pids]
        self.base = self._now()
        self.peak, self._stop = self.base, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _now(self) -> tuple[int, int]:
        return self.me.memory_info().rss, max(w.memory_info().rss for w in self.workers)

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = self._now()
            self.peak = (max(self.peak[0], now[0]), max(self.peak[1], now[1]))
            time.sleep(0.1)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def growth(self) -> tuple[int, int]:
        return (self.peak[0] - self.base[0]) >> 20, (self.peak[1] - self.base[1]) >> 20


def measure(n_docs: int) -> None:
    work = WORK / str(n_docs)
    shutil.rmtree(work, ignore_errors=True)
    stems = write_parts(work, n_docs)
    with open_client(workers=2) as client:
        pids = list(client.run(os.getpid).values())
        ctx = SimpleNamespace(client=client, name="tokenize", progress=False)
        with Peaks(pids) as peaks:
            start = time.perf_counter()
            planned = plan.plan(ctx, str(work), stems, FRACTION, dict(TARGETS), set(), SHARD_TOKENS)
            distributed = time.perf_counter() - start, *peaks.growth()
        client.run(lambda: __import__("gc").collect())
        with Peaks(pids) as peaks:
            start = time.perf_counter()
            expected = client.submit(reference, str(work), stems, pure=False).result()
            one_task = time.perf_counter() - start, *peaks.growth()
    same = planned.plans == expected["plans"] and planned.correction == expected["correction"]
    print(f"\n{n_docs:,} documents, {len(stems)} parts, {len(planned.plans)} shards; plans identical: {same}")
    print(f"{'planner':<22}{'seconds':>9}{'client +MiB':>13}{'worker +MiB':>13}")
    for name, (seconds, client_mib, worker_mib) in (("distributed", distributed), ("one task (before)", one_task)):
        print(f"{name:<22}{seconds:>9.1f}{client_mib:>13,}{worker_mib:>13,}")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[1_200_000, 4_800_000])
    for n_docs in parser.parse_args().docs:
        measure(n_docs)


if __name__ == "__main__":
    main()
