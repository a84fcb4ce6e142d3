"""What the runner hands a stage: a finished stage's output, and a global stage's context.

`StageOutput` names a finished stage's folder (a URL or local path), fingerprint, committed
parts and schema; `GlobalContext` gives a global stage the Dask client, its input, its own
folder, the seed, its stats and the artifacts of earlier stages (`ctx.artifacts["mixture"]`:
the mix stage's folder), and runs maps on the cluster (`ctx.map`) with progress.

    parts = ctx.map(fn, ctx.input.paths(), "hash", cost=sizes); ctx.write_part("part-00000", table)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
from distributed import Client

from pipeline import storage
from pipeline.io import write_parquet
from pipeline.progress import largest_first, map_all
from pipeline.stats import StageStats


@dataclasses.dataclass(frozen=True)
class StageOutput:
    """What a finished stage hands to the next one."""

    dir: str  # a URL (or local path), joined with `storage.join`
    fingerprint: str
    parts: tuple[str, ...]  # empty when the documents were not written (`materialized` false)
    schema: pa.Schema
    materialized: bool = True  # false: a map stage fused into the next one (pipeline/fuse.py)
    rows: tuple[int, ...] | None = None  # per part, when the manifest gave them
    sizes: tuple[int, ...] | None = None  # text (or page) bytes per part, when the manifest gave them

    @property
    def name(self) -> str:
        return storage.basename(self.dir)

    def path(self, *names: str) -> str:
        return storage.join(self.dir, *names)

    def paths(self) -> list[str]:
        return [self.path(p) for p in self.parts]


@dataclasses.dataclass
class GlobalContext:
    """What a global stage gets: the client, its input, its directory and the seed."""

    client: Client
    input: StageOutput
    dir: str  # a URL (or local path), joined with `storage.join` / `path`
    seed: int
    stats: StageStats
    progress: bool = True
    parts: set[str] = dataclasses.field(default_factory=set)  # this stage's committed parts
    # artifact name -> folder of the latest earlier stage that produced it, for those the stage
    # `uses` (`Stage.produces`, `Stage.uses`)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return storage.basename(self.dir)

    def path(self, *names: str) -> str:
        return storage.join(self.dir, *names)

    def commit_parts(self, names: Iterable[str]) -> None:
        """Declare written `part-*.parquet` files as this stage's output (the manifest lists
        only declared parts; call it once their writes have finished)."""
        self.parts.update(names)

    def write_part(self, name: str, table: pa.Table) -> None:
        write_parquet(table, self.path(f"{name}.parquet"))
        self.commit_parts([f"{name}.parquet"])

    def write_rejected(self, name: str, table: pa.Table) -> None:
        if table.num_rows:
            write_parquet(table, self.path("rejected", f"{name}.parquet"))

    def map(self, fn: Callable, items: list, desc: str, cost: list[float] | None = None, **kwargs: Any) -> list:
        """Run `fn(item, **kwargs)` on the cluster for every item; results in item order.
        With `cost` (e.g. input bytes), the costliest items are submitted first."""
        order = largest_first(cost) if cost is not None else list(range(len(items)))
        results = map_all(self.client, fn, [(items[i],) for i in order], f"{self.name}:{desc}", "task",
                          self.progress, **kwargs)
        ordered: list = [None] * len(items)
        for i, result in zip(order, results):
            ordered[i] = result
        return ordered
