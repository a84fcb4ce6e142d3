"""What the runner hands a stage, and what a global stage hands back.

`StageOutput` names a finished stage's folder (a URL or local path), fingerprint, committed
parts and schema. `GlobalContext` gives a global stage the Dask client, its input, its own
folder, the seed and the artifacts of earlier stages (`ctx.artifacts["mixture"]`: the mix
stage's folder), and runs maps on the cluster with progress: `ctx.map` for any items,
`ctx.map_parts` for one task per input part that resumes by itself. A global stage's `run`
returns a `GlobalResult` (its stats, its parts and extra manifest fields); the runner writes
the manifest from it.

    stats = ctx.map_parts(apply_part, "apply", rule=rule)     # apply_part(part, in_dir, out_dir, rule)
    return GlobalResult(stats, ctx.input.parts, {"selection": selection})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from distributed import Client

from pipeline import storage
from pipeline.io import commit_records, is_committed
from pipeline.parts import part_cost
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

    def costs(self, parts: list[str]) -> list[int]:
        """A scheduling cost per part of `parts`: its bytes from the manifest, else the file's
        (`part_cost`: a request per part on object storage)."""
        if self.sizes is not None:
            size = dict(zip(self.parts, self.sizes))
            return [size[p] for p in parts]
        return [part_cost(self.path(p)) for p in parts]


@dataclasses.dataclass(frozen=True)
class GlobalResult:
    """What a global stage's `run` returns: its stats (the manifest's `stats`), the parts it
    committed (its output documents, in its folder; none for a stage that writes other files)
    and extra manifest fields (an audit, a chosen threshold, a mixture report)."""

    stats: StageStats
    parts: tuple[str, ...] = ()
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class GlobalContext:
    """What a global stage gets: the client, its input, its directory and the seed."""

    client: Client
    input: StageOutput
    dir: str  # a URL (or local path), joined with `storage.join` / `path`
    seed: int
    progress: bool = True
    # artifact name -> folder of the latest earlier stage that produced it, for those the stage
    # `uses` (`Stage.produces`, `Stage.uses`)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    # a stage that only removes rows may write views of its input parts instead of copies
    # (pipeline/parts.py): false for the run's last documents and with --keep-intermediate
    views: bool = False

    @property
    def name(self) -> str:
        return storage.basename(self.dir)

    def path(self, *names: str) -> str:
        return storage.join(self.dir, *names)

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

    def map_parts(self, fn: Callable, desc: str, indexed: bool = False, by_size: bool = False,
                  **kwargs: Any) -> StageStats:
        """Run `fn(part, in_dir=, out_dir=, **kwargs)` on the cluster for every input part that
        has no commit record in this stage's folder yet (a resumed run skips the others), and
        return the sum of every part's committed stats, in part order. `fn` writes its files,
        then its commit record (`pipeline.io.commit_part`). With `indexed` it gets
        `(position, part)` instead of `part`; with `by_size` the largest parts go first."""
        todo = [(i, p) for i, p in enumerate(self.input.parts) if not is_committed(self.dir, p)]
        items = todo if indexed else [p for _, p in todo]
        cost = self.input.costs([p for _, p in todo]) if by_size else None
        self.map(fn, items, desc, cost=cost, in_dir=self.input.dir, out_dir=self.dir, **kwargs)
        records = commit_records(self.dir)
        return sum((StageStats.from_dict(records[p]) for p in self.input.parts), StageStats())
