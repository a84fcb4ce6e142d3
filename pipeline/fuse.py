"""Fused map stages: a run of consecutive map stages is one task per part.

The runner groups a config's stages (`groups`): each global stage alone, and consecutive map
stages into a *chain*, cut after every stage that materializes (`MapStage.materialize`, a
stage's `materialize: true`, or all of them with `thresher run --keep-intermediate`). A chain's
task (`run_chain_part`) reads its input part once, runs each stage's `run_part` in turn (a
stage's `only:`/`skip:` scope applies inside it) and writes, stage by stage, what the stage
rejected and its commit record; only the chain's last stage writes its kept documents. So
every stage keeps its `rejected/`, `_stats/` records and `_manifest.json` with the bytes and
counts it would have had alone, and the corpus is written once per chain instead of once per
stage, as datatrove runs a pipeline's steps in one task.

Merging: a chain that begins a run of map stages (after the read stage or a global stage, or
after a stage that materializes) first groups consecutive small input parts, in part order,
up to `read.max_bytes_per_part` (and `max_docs_per_part`) by their committed sizes
(`merge_plan`); a group's task concatenates them and every stage of the chain names its output
after the group's first part. Filters shrink the data, so their output parts are small; the
chain after the next global stage merges them. The groups depend on the sizes and the config
only, so the bytes are the same on any number of workers and with `--keep-intermediate`, which
merges at the same places.

Resumption: a task commits the part's records in stage order (the last stage's record last),
and a part counts as done for the chain only when every stage being computed has its record.
A stage's input that was not written (a changed stage after an intermediate one) is rebuilt
from the nearest earlier stage whose documents were written, running the finished stages in
between again without writing anything (`Step.write` false): they give the same documents.

    for group in groups(stages): ...      # [[0], [1, 2, 3], [4], ...]: positions in `stages`
    merge_plan(parts, rows, sizes, 128 << 20, None)   # [["part-00000-0000.parquet", ...], ...]
    run_chain_part([in_path, ...], "part-00000-0000.parquet", [Step(stage, out_dir, write=True, keep=True)])
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from pipeline import storage
from pipeline.guards import count_rejected
from pipeline.io import commit, table_bytes, write_parquet
from pipeline.parts import read_part
from pipeline.stage import MapStage, PartResult, Stage
from pipeline.stats import StageStats


def groups(stages: list[Stage], keep_all: bool = False) -> list[list[int]]:
    """Positions of `stages` in run order, grouped: a global stage alone, consecutive map
    stages together up to and including one that materializes (every one with `keep_all`)."""
    out: list[list[int]] = []
    chain_open = False
    for position, stage in enumerate(stages):
        if chain_open and isinstance(stage, MapStage):
            out[-1].append(position)
        else:
            out.append([position])
        chain_open = isinstance(stage, MapStage) and not (stage.materialize or keep_all)
    return out


@dataclasses.dataclass(frozen=True)
class Step:
    """One map stage of a chain, as its task runs it."""

    stage: MapStage
    dir: str  # the stage's folder (a URL or local path)
    write: bool = True  # False: finished already; run only to feed the next stage
    keep: bool = False  # write the kept documents too (the chain's last stage)


def run_chain_part(in_paths: list[str], part: str, steps: list[Step]) -> list[dict]:
    """Run the parts at `in_paths`, concatenated in order, through `steps` as output part `part`;
    runs on a Dask worker. Returns the stats of the stages that wrote, in order."""
    tables = [read_part(p) for p in in_paths]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
    merged = [storage.basename(p) for p in in_paths] if len(in_paths) > 1 else None
    return run_chain_table(table, part, steps, merged)


def run_chain_table(table: pa.Table, part: str, steps: list[Step], merged: list[str] | None = None) -> list[dict]:
    """Run `table` through `steps` as output part `part` (in a read task when the read stage is
    not materialized, else from `run_chain_part`). Returns the stats of the stages that wrote."""
    written = []
    for step in steps:
        result = step.stage.run_part(table)
        if step.write:
            written.append(write_part(step, part, result, merged))
        table = result.kept
    return written


def write_part(step: Step, part: str, result: PartResult, merged: list[str] | None = None,
               kept: tuple[int, int] | None = None) -> dict:
    """Write a stage's rejected rows (and its kept rows if it keeps them), then its commit
    record (stats, rows and bytes kept — `kept`, when the kept rows were not held — the input
    parts merged into it, files), which makes the part count for this stage."""
    files = []
    result.stats.rejected_by_source.update(count_rejected(result.rejected))  # for the run's guards
    if result.rejected.num_rows:
        write_parquet(result.rejected, storage.join(step.dir, "rejected", part))
        files.append(f"rejected/{part}")
    if step.keep:
        write_parquet(result.kept, storage.join(step.dir, part))
        files.append(part)
    stats = result.stats.to_dict()
    rows, n_bytes = kept or (result.kept.num_rows, table_bytes(result.kept))
    sizes = {"rows": rows, "bytes": n_bytes, **({"inputs": merged} if merged else {})}
    commit(step.dir, part, {**stats, **sizes}, files)
    return stats


class ChainBuffer:
    """Runs the read stage's chunks through `steps` one at a time (`read.materialize: false`)
    and writes, stage by stage, the outputs of consecutive chunks of one read task together as
    one part named after the first, while the stage's input from them stays within the part
    limits (bytes and documents). Filters shrink a chunk of raw pages to a small part, and no
    later task can merge the chunks the read stage never wrote. A stage's parts depend on its
    input only, not on the stages after it, so a changed later stage leaves them as they are;
    only what a stage writes is held until its part is written."""

    def __init__(self, steps: list[Step], max_bytes: int, max_rows: int | None):
        self.steps, self.max_bytes, self.max_rows = steps, max_bytes, max_rows
        self.held: list[list[tuple[str, PartResult, tuple[int, int]]]] = [[] for _ in steps]
        self.size = [(0, 0) for _ in steps]  # per stage: input bytes and rows held
        self.parts: list[list[str]] = [[] for _ in steps]  # per stage: the parts written, in order

    def add(self, table: pa.Table, name: str) -> None:
        for j, step in enumerate(self.steps):
            n_bytes, n_rows = table_bytes(table), table.num_rows
            result = step.stage.run_part(table)
            held_bytes, held_rows = self.size[j]
            if self.held[j] and (held_bytes + n_bytes > self.max_bytes
                                 or (self.max_rows is not None and held_rows + n_rows > self.max_rows)):
                self._flush(j)
                held_bytes = held_rows = 0
            kept = (result.kept.num_rows, table_bytes(result.kept))
            slim = result if step.keep else dataclasses.replace(result, kept=result.kept.slice(0, 0))
            self.held[j].append((name, slim, kept))
            self.size[j] = (held_bytes + n_bytes, held_rows + n_rows)
            table = result.kept

    def flush(self) -> None:
        for j in range(len(self.steps)):
            self._flush(j)

    def _flush(self, j: int) -> None:
        if not self.held[j]:
            return
        names = [name for name, _, _ in self.held[j]]
        if self.steps[j].write:
            result = _combined([r for _, r, _ in self.held[j]])
            kept = (sum(k[0] for _, _, k in self.held[j]), sum(k[1] for _, _, k in self.held[j]))
            write_part(self.steps[j], names[0], result, names if len(names) > 1 else None, kept)
        self.parts[j].append(names[0])
        self.held[j], self.size[j] = [], (0, 0)


def _combined(results: list[PartResult]) -> PartResult:
    if len(results) == 1:
        return results[0]
    concat = lambda tables: pa.concat_tables(tables, promote_options="default")  # noqa: E731
    return PartResult(concat([r.kept for r in results]), concat([r.rejected for r in results]),
                      sum((r.stats for r in results), StageStats()))


def merge_plan(parts: list[str], rows: list[int], sizes: list[int], max_bytes: int,
               max_rows: int | None) -> list[list[str]]:
    """Consecutive `parts` grouped in order, each group growing while its bytes stay within
    `max_bytes` and its rows within `max_rows`; a part over either limit is a group alone. The
    same sizes give the same groups, on any number of workers."""
    groups_: list[list[str]] = []
    group_bytes = group_rows = 0
    for part, n_rows, n_bytes in zip(parts, rows, sizes):
        full = group_bytes + n_bytes > max_bytes or (max_rows is not None and group_rows + n_rows > max_rows)
        if not groups_ or full:
            groups_.append([])
            group_bytes = group_rows = 0
        groups_[-1].append(part)
        group_bytes, group_rows = group_bytes + n_bytes, group_rows + n_rows
    return groups_


def chain_name(dirs: list[str]) -> str:
    """`02-language` for one stage, `02-language..08-pii` for a chain."""
    names = [storage.basename(d) for d in dirs]
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def share_wall_time(wall: float, worker_seconds: list[float]) -> list[float]:
    """A chain's wall time split over its stages in proportion to their worker seconds (evenly
    when none were measured), so that a run's stage times still add up to its length."""
    total = sum(worker_seconds)
    if total <= 0:
        return [wall / len(worker_seconds)] * len(worker_seconds)
    return [wall * s / total for s in worker_seconds]
