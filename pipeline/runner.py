"""The runner: executes a `RunConfig`'s stages in order on a Dask client.

Stage `i` writes `OUTPUT/<ii>-<name>/part-*.parquet` (+ `rejected/`, `_stats/`) and, last,
`_manifest.json`; OUTPUT is any fsspec URL (`pipeline.storage`). A stage whose manifest matches
its fingerprint (its params, the seed and its input's fingerprint) is skipped on a rerun.

The commit protocol works without rename, so it holds on object stores: a part counts only
once a commit record lists it. A map task writes its parts, then `_stats/<part>.json` (its
stats and the files it wrote); a global stage declares its parts (`GlobalContext.write_part`,
`commit_parts`); the manifest's part list comes from those records, never from a listing of
part files. Inside an unfinished stage a rerun first deletes every part or rejected file that
no record lists (what a killed task left), then skips committed tasks, so a killed run resumes
and produces the same bytes. A stage whose params changed is recomputed from scratch, and so is
everything after it.

    with open_client(workers=2) as client:
        Runner(load_config("configs/demo.yaml"), client).run()
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dask
import pyarrow as pa
from distributed import Client, LocalCluster, wait
from tqdm import tqdm

from pipeline import __version__, storage
from pipeline.config import ClusterOptions, RunConfig, config_hash
from pipeline.io import (
    COMMITS,
    commit,
    commit_records,
    committed_parts,
    file_sizes,
    is_committed,
    parquet_rows,
    read_json,
    write_bytes,
    write_json,
    write_parquet,
)
from pipeline.read import read_schema, run_read_task
from pipeline.readers import list_tasks, static_prefix
from pipeline.stage import GlobalStage, MapStage, Stage
from pipeline.stats import StageStats

MANIFEST = "_manifest.json"
# The local cluster's housekeeping, made quieter: no statistical profiler (it samples every
# task's stack 100 times a second for the dashboard, which the local cluster doesn't start;
# ~15% of a CPU-bound task), and the event-loop tick (a blocked-loop warning), the system
# monitor (dashboard metrics) and the memory monitor (spill/pause/terminate) less often. An
# idle 2-worker cluster then takes ~3% of a core instead of ~12% (measured with psutil),
# CPU that a busy 2-core machine would otherwise take from the tasks.
LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "500ms",
}

POLL_SECONDS = 0.5  # how often a map's progress bar is brought up to date
LOG_EVERY_SECONDS = 60.0  # progress lines in a log file (stderr not a terminal)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None,
                cluster: ClusterOptions | None = None) -> Iterator[Client]:
    """A Dask client: on `scheduler` if given, else on batch jobs if `cluster.kind` is a batch
    system (pipeline/cluster.py), else on a LocalCluster of worker processes (one thread each:
    stages are CPU-bound Python)."""
    if scheduler:
        with Client(scheduler, set_as_default=False) as client:
            yield client
        return
    if cluster is not None and cluster.kind != "local":
        from pipeline.cluster import job_queue_client  # imports dask-jobqueue only when used

        with job_queue_client(cluster) as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    # No dashboard; the scheduler's small HTTP server (health, metrics) takes a free port
    # instead of 8787, so parallel runs on one machine don't warn about each other.
    with dask.config.set(LOCAL_WORKER_CONFIG), LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, silence_logs=logging.ERROR,
    ) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


@dataclasses.dataclass(frozen=True)
class StageOutput:
    """What a finished stage hands to the next one."""

    dir: str  # a URL (or local path), joined with `storage.join`
    fingerprint: str
    parts: tuple[str, ...]
    schema: pa.Schema

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
        futures = self.client.map(fn, [items[i] for i in order], pure=False, **kwargs)
        results = wait_all(futures, f"{self.name}:{desc}", "task", self.progress)
        ordered: list = [None] * len(items)
        for i, result in zip(order, results):
            ordered[i] = result
        return ordered


def largest_first(cost: list[float]) -> list[int]:
    """Positions by descending cost (ties in order). Dask runs a map's tasks in submission
    order, so the last tasks are the shortest and no worker waits long at the end for
    another's big one (LPT scheduling)."""
    return sorted(range(len(cost)), key=lambda i: (-cost[i], i))


def wait_all(futures: list, desc: str, unit: str, progress: bool) -> list:
    """Results of `futures` in their order, with progress; a task's exception is re-raised
    here within a poll. The futures' states are polled every half second and the results
    fetched in one gather: waking this thread and asking for each result separately cost the
    client process ~2.5 ms of CPU per task, time taken from the workers when they are as many
    as the cores. Progress is a bar on a terminal and, in a log file, a line every
    `LOG_EVERY_SECONDS` (no carriage returns)."""
    if not futures:
        return []
    client = futures[0].client
    pending = list(futures)
    with client.as_current(), Progress(len(futures), desc, unit, progress) as bar:
        while pending:
            try:
                wait(pending, timeout=POLL_SECONDS)
            except TimeoutError:
                pass
            for future in pending:
                if future.status in ("error", "cancelled"):
                    future.result()  # raises the task's exception
            still = [f for f in pending if f.status != "finished"]
            bar.update(len(pending) - len(still))
            pending = still
    return client.gather(futures)


class Progress:
    """A tqdm bar when stderr is a terminal; otherwise a plain line every `LOG_EVERY_SECONDS`
    while work remains, so a batch job's log gets no carriage-return floods."""

    def __init__(self, total: int, desc: str, unit: str, enabled: bool):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.start = self.last_line = time.monotonic()
        terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr) if terminal else None
        self.lines = enabled and not terminal

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.monotonic()
        if self.lines and self.done < self.total and now - self.last_line >= LOG_EVERY_SECONDS:
            self.last_line = now
            log(f"[{self.desc}] {self.done}/{self.total} {self.unit}s done, {now - self.start:.0f}s")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def run_map_part(in_path: str, out_dir: str, part: str, stage: MapStage) -> dict:
    """Process one partition; runs on a Dask worker. Writes rejected, kept, then the commit
    record (stats + the files written), which makes the part count."""
    table = storage.read_table(in_path)
    result = stage.run_part(table)
    files = [part]
    if result.rejected.num_rows:
        write_parquet(result.rejected, storage.join(out_dir, "rejected", part))
        files.append(f"rejected/{part}")
    write_parquet(result.kept, storage.join(out_dir, part))
    stats = result.stats.to_dict()
    commit(out_dir, part, stats, files)
    return stats


class Runner:
    def __init__(self, config: RunConfig, client: Client, progress: bool = True):
        self.config = config
        self.client = client
        self.progress = progress
        self.out = config.output
        configure_storage(config)
        storage.register_on(client)

    def run(self) -> dict[str, Any]:
        stages = self.config.build_stages()
        for stage in stages:
            stage.check()
        storage.makedirs(self.out)
        write_bytes(self.config.to_yaml().encode(), storage.join(self.out, "config.yaml"))
        previous = self._run_read()
        manifests = [read_json(previous.path(MANIFEST))]
        for index, stage in enumerate(stages, start=1):
            previous = self._run_stage(index, stage, previous)
            manifests.append(read_json(previous.path(MANIFEST)))
        summary = summarize(self.config, manifests)
        write_json(summary, storage.join(self.out, "stats.json"))
        return summary

    # -- stages ---------------------------------------------------------------------------

    def _prepare(self, directory: str, fingerprint: str) -> StageOutput | None:
        """Return the finished output if `directory` already holds it; otherwise make sure
        the directory holds nothing from a different configuration and no uncommitted file."""
        name = storage.basename(directory)
        manifest = storage.join(directory, MANIFEST)
        if storage.exists(manifest):
            done = read_json(manifest)
            if done.get("fingerprint") == fingerprint:
                log(f"[{name}] done already, skipped")
                return StageOutput(directory, fingerprint, tuple(done["parts"]), _schema_of(directory, done))
        marker = storage.join(directory, "_stage.json")
        if storage.exists(marker) and read_json(marker).get("fingerprint") == fingerprint:
            discard_uncommitted(directory)
        else:
            storage.rm(directory)
        storage.makedirs(directory)
        write_json({"fingerprint": fingerprint}, marker)
        return None

    def _run_read(self) -> StageOutput:
        directory = storage.join(self.out, "00-read")
        tasks = list_tasks(self.config.inputs, self.config.read)
        files = [(f.relpath, f.size) for t in tasks for f in t.files]
        # Storage options (credentials, endpoints) change where bytes come from, not which.
        inputs = [spec.model_dump(exclude={"storage_options"}) for spec in self.config.inputs]
        fingerprint = config_hash([__version__, inputs, self.config.read.model_dump(), files])
        if (done := self._prepare(directory, fingerprint)) is not None:
            return done
        start = time.perf_counter()
        schema = read_schema(self.config.inputs)
        todo = [t for t in tasks if not is_committed(directory, f"task-{t.index:05d}")]
        log(f"[{storage.basename(directory)}] started: {len(files)} file(s) in {len(tasks)} task(s)"
            f"{_resumed(tasks, todo)}")
        specs = [self.config.inputs[t.input_index] for t in todo]
        futures = self.client.map(
            run_read_task, todo, specs, options=self.config.read, out_dir=directory, schema=schema, pure=False,
        )
        wait_all(futures, storage.basename(directory), "file", self.progress)
        records = commit_records(directory)
        stats = _merge_stats(records)
        return self._finish(directory, "read", "source", {}, fingerprint, stats, start, {}, schema,
                            committed_parts(records.values()))

    def _run_stage(self, index: int, stage: Stage, previous: StageOutput) -> StageOutput:
        directory = storage.join(self.out, f"{index:02d}-{stage.name}")
        params = stage.params.model_dump(mode="json")
        scope = stage.scope.model_dump(mode="json", exclude_none=True)  # {} for most stages: old fingerprints hold
        fingerprint = config_hash([__version__, stage.name, params, stage.fingerprint_extra(), self.config.seed,
                                   previous.fingerprint, *([scope] if scope else [])])
        if (done := self._prepare(directory, fingerprint)) is not None:
            return done
        start = time.perf_counter()
        if isinstance(stage, MapStage):
            schema = stage.output_schema(previous.schema)
            todo = [p for p in previous.parts if not is_committed(directory, p)]
            log(f"[{storage.basename(directory)}] started: {len(previous.parts)} part(s)"
                f"{_resumed(previous.parts, todo)}")
            todo = [todo[i] for i in largest_first(file_sizes(previous.path(p) for p in todo))]
            futures = self.client.map(
                run_map_part, [previous.path(p) for p in todo], [directory] * len(todo), todo,
                stage=stage, pure=False,
            )
            wait_all(futures, storage.basename(directory), "part", self.progress)
            records = commit_records(directory)
            stats, extra, parts = _merge_stats(records), {}, committed_parts(records.values())
        else:
            assert isinstance(stage, GlobalStage)
            log(f"[{storage.basename(directory)}] started: {len(previous.parts)} part(s), global")
            stats = StageStats()
            ctx = GlobalContext(self.client, previous, directory, self.config.seed, stats, self.progress)
            extra = stage.run(ctx) or {}
            stats.seconds = time.perf_counter() - start
            schema, parts = None, sorted(ctx.parts)
        return self._finish(directory, stage.name, stage.kind, params, fingerprint, stats, start, extra, schema,
                            parts)

    def _finish(self, directory: str, name: str, kind: str, params: dict, fingerprint: str,
                stats: StageStats, start: float, extra: dict, schema: pa.Schema | None,
                committed: list[str]) -> StageOutput:
        """Write the manifest (last: it marks the stage done) over the committed parts."""
        parts = tuple(committed)
        if schema is None:
            schema = storage.read_schema(storage.join(directory, parts[0])) if parts else pa.schema([])
        manifest = {
            "stage": name,
            "kind": kind,
            "params": params,
            "fingerprint": fingerprint,
            "thresher_version": __version__,
            "wall_seconds": round(time.perf_counter() - start, 3),
            "parts": list(parts),
            "rows": {p: parquet_rows(storage.join(directory, p)) for p in parts},
            "stats": stats.to_dict(),
            **extra,
        }
        write_json(manifest, storage.join(directory, MANIFEST))
        s = stats
        name = storage.basename(directory)
        log(f"[{name}] {s.docs_in} in -> {s.docs_out} kept, {s.docs_rejected} rejected "
            f"({manifest['wall_seconds']:.1f}s)")
        if errors := {k: v for k, v in s.rejected.items() if k.endswith(".error")}:
            log(f"[{name}] warning: documents raised errors and were set aside in rejected/: {errors}")
        return StageOutput(directory, fingerprint, parts, schema)


def _resumed(items: list, todo: list) -> str:
    return f", {len(items) - len(todo)} done already" if len(todo) < len(items) else ""


def configure_storage(config: RunConfig) -> None:
    """Make the config's storage options known to this process (see `storage.register_on`)."""
    storage.configure(config.output, config.storage_options)
    for spec in config.inputs:
        storage.configure(static_prefix(spec.path) or spec.path, spec.storage_options)


# Files a task writes and a commit record must list; everything else in a stage folder is the
# stage's own bookkeeping (`_stats/`, `_stage.json`, work folders with their own markers).
_TASK_OUTPUTS = ("part-", "rejected/", "signatures/")


def discard_uncommitted(directory: str) -> None:
    """Delete the part, rejected and signature files that no commit record lists (left by a
    killed task), and local temp files, before an unfinished stage resumes. A record without a
    file list (from an older thresher) is dropped too, so its task runs again."""
    records = commit_records(directory)
    for name in [n for n, r in records.items() if "files" not in r]:  # written before records named files
        storage.rm(storage.join(directory, COMMITS, f"{name}.json"), recursive=False)
    listed = {f for record in records.values() for f in record.get("files", ())}
    for rel in storage.walk_files(directory):
        temp = storage.basename(rel).startswith(".") and ".tmp-" in rel
        if temp or (rel.startswith(_TASK_OUTPUTS) and rel not in listed):
            storage.rm(storage.join(directory, rel), recursive=False)


def _schema_of(directory: str, manifest: dict) -> pa.Schema:
    parts = manifest["parts"]
    return storage.read_schema(storage.join(directory, parts[0])) if parts else pa.schema([])


def _merge_stats(records: dict[str, dict]) -> StageStats:
    return sum((StageStats.from_dict(records[k]) for k in sorted(records)), StageStats())


def summarize(config: RunConfig, manifests: Iterable[dict]) -> dict[str, Any]:
    """The run's receipt: every stage's counts, in order, plus the quarantine list."""
    stages = []
    for index, m in enumerate(manifests):
        stages.append({"index": index, "stage": m["stage"], "kind": m["kind"], "dir": f"{index:02d}-{m['stage']}",
                       "wall_seconds": m["wall_seconds"], **m["stats"]})
    first, last = stages[0], stages[-1]
    return {
        "schema_version": 1,
        "thresher_version": __version__,
        "output": config.output,
        "config_hash": config_hash(config.to_dict()),
        "summary": {
            "documents_read": first["docs_out"] + first["docs_rejected"],
            "documents_out": last["docs_out"],
            "documents_rejected": sum(s["docs_rejected"] for s in stages),
            "files_quarantined": len(first["quarantine"]),
        },
        "stages": stages,
    }
