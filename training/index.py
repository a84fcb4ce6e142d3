"""The packed loader's per-document index, built once per shard set and memory-mapped.

Packing needs, per domain, every document's length and, per epoch, a seeded document order,
the cumulative token ends of that order and a seeded sample order: ~36 bytes per document
and epoch, plus 4 for the lengths. Built in memory by every rank, that is ~48 bytes per
document per rank with two epochs cached (≈48 GB per rank at 10^9 documents). Here the first
process that needs an array builds it under a file lock, saves it as `.npy` in the cache
folder (written under a temporary name, then renamed), and every rank maps it read-only:
the pages live once in the page cache, shared by all ranks on a node, and a later run over
the same shards, sequence length and seed reuses them.

    cache = IndexCache(Path("out/train/data-index"))
    lengths = cache.arrays("lengths", key, lambda: {"lengths": ...})["lengths"]
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tokenization.indexed import IndexedDataset


def shards_key(shards: list[IndexedDataset]) -> list[list]:
    """What identifies a shard set: each shard's path, index size and modification time (a
    rewritten shard gets a new index)."""
    key = []
    for shard in shards:
        stat = os.stat(shard.idx_file)  # a shard on an object store: its local cached copy
        where = str(Path(shard.prefix).resolve()) if isinstance(shard.prefix, Path) else shard.prefix
        key.append([where, stat.st_size, stat.st_mtime_ns, len(shard)])
    return key


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if the holder dies
        yield


class IndexCache:
    """Arrays by (kind, key): memory-mapped from `folder`, or built in memory without one."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def arrays(self, kind: str, key: object, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The arrays `build()` returns, built at most once per folder and mapped read-only."""
        if self.folder is None:
            return build()
        digest = hashlib.sha256(json.dumps([kind, key], sort_keys=True).encode()).hexdigest()[:20]
        stem = self.folder / f"{kind}-{digest}"
        done = stem.with_suffix(".json")
        if not done.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            with _locked(stem.with_suffix(".lock")):
                if not done.exists():
                    self._save(stem, done, build())
        names = json.loads(done.read_text())["arrays"]
        return {name: np.load(f"{stem}.{name}.npy", mmap_mode="r") for name in names}

    @staticmethod
    def _save(stem: Path, done: Path, arrays: dict[str, np.ndarray]) -> None:
        for name, array in arrays.items():
            tmp = stem.with_name(f".{stem.name}.{name}.{uuid.uuid4().hex[:8]}.npy")
            np.save(tmp, np.ascontiguousarray(array))
            os.replace(tmp, f"{stem}.{name}.npy")
        tmp = done.with_name(f".{done.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps({"arrays": sorted(arrays)}))
        os.replace(tmp, done)  # last: the arrays are complete once this exists
