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
everything after it. Before the first stage, folders of stages the config no longer names
are moved to `OUTPUT/_stale/` (deleted with `remove_stale`) and planned folders made with another
fingerprint are deleted (`pipeline/stale.py`), so the output holds only this config's stages.
Before each stage and at the end, the run's guards (`pipeline.guards`) read the manifests so far
and stop a run that lost an input or a source (`GuardFailed`).

    with open_client(workers=2) as client:          # pipeline/cluster.py
        Runner(load_config("configs/demo.yaml"), client).run()
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from distributed import Client

from pipeline import __version__, storage
from pipeline.config import RunConfig, config_hash
from pipeline.context import GlobalContext, StageOutput
from pipeline.guards import Guards, count_rejected, count_rejected_files, format_sources, source_losses
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
from pipeline.preflight import check_output
from pipeline.progress import largest_first, log, map_all
from pipeline.read import input_summary, read_limited, read_schema, run_read_task
from pipeline.readers import list_tasks, static_prefix
from pipeline.stage import GlobalStage, MapStage, Stage
from pipeline.stale import clear_stale, planned_dirs
from pipeline.stats import StageStats

MANIFEST = "_manifest.json"
def run_map_part(in_path: str, out_dir: str, part: str, stage: MapStage) -> dict:
    """Process one partition; runs on a Dask worker. Writes rejected, kept, then the commit
    record (stats + the files written), which makes the part count."""
    table = storage.read_table(in_path)
    result = stage.run_part(table)
    result.stats.rejected_by_source.update(count_rejected(result.rejected))
    files = [part]
    if result.rejected.num_rows:
        write_parquet(result.rejected, storage.join(out_dir, "rejected", part))
        files.append(f"rejected/{part}")
    write_parquet(result.kept, storage.join(out_dir, part))
    stats = result.stats.to_dict()
    commit(out_dir, part, stats, files)
    return stats


class Runner:
    def __init__(self, config: RunConfig, client: Client, progress: bool = True, remove_stale: bool = False,
                 guards: bool = True):
        self.config = config
        self.client = client
        self.progress = progress
        self.remove_stale = remove_stale
        self.out = config.output
        self.guards = Guards(config.guards) if guards else None
        configure_storage(config)
        storage.register_on(client)

    def run(self) -> dict[str, Any]:
        stages = self.config.build_stages()
        for stage in stages:
            stage.check()
        check_output(self.out, self.config.storage_options)
        storage.makedirs(self.out)
        tasks = list_tasks(self.config.inputs, self.config.read)
        plan = self._plan(tasks, stages)
        clear_stale(self.out, plan, remove=self.remove_stale)
        write_bytes(self.config.to_yaml().encode(), storage.join(self.out, "config.yaml"))
        previous = self._run_read(tasks, *plan[0])
        manifests = [read_json(previous.path(MANIFEST))]
        for stage, (folder, fingerprint) in zip(stages, plan[1:]):
            self._check(manifests)  # an input or a source lost already stops the run before the next stage
            previous = self._run_stage(stage, previous, folder, fingerprint)
            manifests.append(read_json(previous.path(MANIFEST)))
        summary = summarize(self.config, manifests)
        write_json(summary, storage.join(self.out, "stats.json"))
        self._check(manifests, summary)
        return summary

    def _check(self, manifests: list[dict], summary: dict | None = None) -> None:
        if self.guards is not None:
            self.guards.check(manifests, summary)

    # -- stages ---------------------------------------------------------------------------

    def _plan(self, tasks: list, stages: list[Stage]) -> list[tuple[str, str]]:
        """(folder name, fingerprint) of every stage this run writes, read first. A stage's
        fingerprint is its params, the seed and its input's fingerprint: `_prepare` reuses a
        folder only if it holds the same one."""
        files = [(f.relpath, f.size) for t in tasks for f in t.files]
        # Storage options (credentials, endpoints) change where bytes come from, not which.
        inputs = [spec.model_dump(exclude={"storage_options"}) for spec in self.config.inputs]
        # exclude_none: `read.limit` unset leaves the fingerprints of earlier runs as they were
        read = self.config.read.model_dump(exclude_none=True)
        fingerprint = config_hash([__version__, inputs, read, files])
        fingerprints = [fingerprint]
        for stage in stages:
            params = stage.params.model_dump(mode="json")
            scope = stage.scope.model_dump(mode="json", exclude_none=True)  # {} for most stages: old fingerprints hold
            fingerprints.append(config_hash([__version__, stage.name, params, stage.fingerprint_extra(),
                                             self.config.seed, fingerprints[-1], *([scope] if scope else [])]))
        return list(zip(planned_dirs([s.name for s in stages]), fingerprints))

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

    def _run_read(self, tasks: list, folder: str, fingerprint: str) -> StageOutput:
        directory = storage.join(self.out, folder)
        files = [(f.relpath, f.size) for t in tasks for f in t.files]
        if (done := self._prepare(directory, fingerprint)) is not None:
            return done
        start = time.perf_counter()
        schema = read_schema(self.config.inputs)
        todo = [t for t in tasks if not is_committed(directory, f"task-{t.index:05d}")]
        log(f"[{storage.basename(directory)}] started: {len(files)} file(s) in {len(tasks)} task(s)"
            f"{_resumed(tasks, todo)}{_limited(self.config.read.limit)}")
        if self.config.read.limit:
            read_limited(self.client, tasks, self.config.inputs, self.config.read, directory, schema, self.progress)
        else:
            specs = [self.config.inputs[t.input_index] for t in todo]
            map_all(self.client, run_read_task, list(zip(todo, specs)), storage.basename(directory), "file",
                    self.progress, options=self.config.read, out_dir=directory, schema=schema)
        records = commit_records(directory)
        stats = _merge_stats(records)
        extra = {"inputs": input_summary(self.config.inputs, tasks, records)}
        return self._finish(directory, "read", "source", {}, fingerprint, stats, start, extra, schema,
                            committed_parts(records.values()))

    def _run_stage(self, stage: Stage, previous: StageOutput, folder: str, fingerprint: str) -> StageOutput:
        directory = storage.join(self.out, folder)
        params = stage.params.model_dump(mode="json")
        if (done := self._prepare(directory, fingerprint)) is not None:
            return done
        start = time.perf_counter()
        if isinstance(stage, MapStage):
            schema = stage.output_schema(previous.schema)
            todo = [p for p in previous.parts if not is_committed(directory, p)]
            log(f"[{storage.basename(directory)}] started: {len(previous.parts)} part(s)"
                f"{_resumed(previous.parts, todo)}")
            todo = [todo[i] for i in largest_first(file_sizes(previous.path(p) for p in todo))]
            map_all(self.client, run_map_part, [(previous.path(p), directory, p) for p in todo],
                    storage.basename(directory), "part", self.progress, stage=stage)
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
        if sum(stats.rejected_by_source.values()) != stats.docs_rejected:  # a global stage's own rejected/
            stats.rejected_by_source = count_rejected_files(self.client, directory)
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


def _limited(limit: int | None) -> str:
    return f", reading the first {limit} document(s) of each input" if limit else ""


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
    """The run's receipt: every stage's counts, in order, the quarantine list, and per source
    the documents read and lost with the reasons."""
    manifests = list(manifests)
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
        "sources": source_losses(manifests),
    }


def print_summary(summary: dict) -> None:
    print(f"output:  {summary['output']}")
    for s in summary["stages"]:
        print(f"  {s['dir']:<24} in {s['docs_in']:>8}  kept {s['docs_out']:>8}  rejected {s['docs_rejected']:>7}")
    for line in format_sources(summary.get("sources", {})):
        print(line)
    print(f"stats:   {summary['output']}/stats.json")
    print("summary: " + json.dumps(summary["summary"]))
