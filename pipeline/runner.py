"""The runner: executes a `RunConfig`'s stages in order on a Dask client.

Stage `i` writes `OUTPUT/<ii>-<name>/part-*.parquet` (+ `rejected/`, `_stats/`) and, last,
`_manifest.json`; OUTPUT is any fsspec URL (`pipeline.storage`). A stage whose manifest matches
its fingerprint (its params, the seed and its input's fingerprint) is skipped on a rerun.
Consecutive map stages run fused, one task per part, and only the last of them (or one that
materializes) writes its kept documents (`pipeline.fuse`); `keep_intermediate` writes them all.

The commit protocol works without rename, so it holds on object stores: a part counts only
once a commit record lists it. A map task writes its parts, then `_stats/<part>.json` (its
stats and the files it wrote); a global stage returns its parts (`GlobalResult.parts`); the
manifest's part list comes from those records, never from a listing of part files. Inside
an unfinished stage a rerun first deletes every part or rejected file that no record lists
(what a killed task left), then skips committed tasks, so a killed run resumes and produces
the same bytes. A stage whose params changed is recomputed from scratch, and so is
everything after it. Before the first stage, folders of stages the config no longer names
are moved to `OUTPUT/_stale/` (deleted with `remove_stale`) and planned folders made with another
fingerprint are deleted (`pipeline/stale.py`), so the output holds only this config's stages.
Before each stage and at the end, the run's guards (`pipeline.guards`) read the manifests so far
and stop a run that lost an input or a source (`GuardFailed`). The whole run holds
`OUTPUT/_lock.json` (`pipeline.lock`), so a second run into the same folder is refused, and a
changed stage's folder is removed with a line that says why (`pipeline.stale.change_reason`).

    with open_client(workers=2) as client:          # pipeline/cluster.py
        Runner(load_config("configs/demo.yaml"), client).run()
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from distributed import Client

from pipeline import __version__, lock, storage
from pipeline.config import RunConfig, check_artifacts, config_hash
from pipeline.context import GlobalContext, StageOutput
from pipeline.fuse import Step, chain_name, groups, merge_plan, run_chain_part, share_wall_time
from pipeline.guards import Guards, count_rejected_files, format_sources, source_losses
from pipeline.io import (
    COMMITS,
    commit_records,
    committed_names,
    committed_parts,
    is_committed,
    parquet_sizes,
    read_json,
    write_bytes,
    write_json,
)
from pipeline.parts import VIEWS, part_schema, part_sizes
from pipeline.preflight import check_output
from pipeline.progress import largest_first, log, map_all
from pipeline.read import input_summary, read_limited, read_schema, run_read_task, task_name
from pipeline.readers import list_tasks, static_prefix
from pipeline.stage import GlobalStage, MapStage, Stage
from pipeline.stale import clear_stale, planned_dirs
from pipeline.stats import StageStats

MANIFEST = "_manifest.json"


def run_map_part(in_path: str, out_dir: str, part: str, stage: MapStage) -> dict:
    """Process one partition with one stage (a chain of one); runs on a Dask worker. Writes
    rejected, kept, then the commit record (stats + the files written), which makes it count."""
    return run_chain_part([in_path], part, [Step(stage, out_dir, write=True, keep=True)])[0]


class Runner:
    def __init__(self, config: RunConfig, client: Client, progress: bool = True, remove_stale: bool = False,
                 keep_intermediate: bool = False, guards: bool = True):
        self.config = config
        self.client = client
        self.progress = progress
        self.remove_stale = remove_stale
        self.keep_intermediate = keep_intermediate  # write every map stage's kept documents
        self.out = config.output
        self.guards = Guards(config.guards) if guards else None
        self.planned: dict[str, dict] = {}  # stage folder -> its params and input fingerprint (`_plan`)
        configure_storage(config)
        storage.register_on(client)

    def run(self) -> dict[str, Any]:
        stages = self.config.build_stages()
        check_artifacts(self.config.stages)  # parse_config checked it; a config built in code too
        for stage in stages:
            stage.check()
        check_output(self.out, self.config.storage_options)
        storage.makedirs(self.out)
        folder = storage.absolute(self.out)
        with lock.held(folder, folder, "output"):  # one run at a time writes this folder
            return self._run(stages)

    def _run(self, stages: list[Stage]) -> dict[str, Any]:
        tasks = list_tasks(self.config.inputs, self.config.read)
        plan = self._plan(tasks, stages)
        clear_stale(self.out, plan, remove=self.remove_stale, planned=self.planned)
        write_bytes(self.config.to_yaml().encode(), storage.join(self.out, "config.yaml"))
        fingerprints = [fingerprint for _, fingerprint in plan[1:]]
        artifacts: dict[str, str] = {}  # name -> folder of the latest stage that produced it
        chains = groups(stages, self.keep_intermediate)
        if self._fuses_read(stages):
            first = groups(stages)[0]  # --keep-intermediate writes its stages' documents, in the same parts
            chains = [g for g in chains if g[0] > first[-1]]
            outputs = self._run_read_chain(tasks, *plan[0], [stages[i] for i in first],
                                           [fingerprints[i] for i in first])
            artifacts.update({a: o.dir for i, o in zip(first, outputs[1:]) for a in stages[i].produces})
        else:
            outputs = [self._run_read(tasks, *plan[0])]
        manifests = [read_json(o.path(MANIFEST)) for o in outputs]
        for group in chains:
            self._check(manifests)  # an input or a source lost already stops the run before the next stages
            index = group[0] + 1  # stage folders count from 01; 00 is the read stage
            if isinstance(stages[group[0]], MapStage):
                done = self._run_chain(index, [stages[i] for i in group], outputs[-1],
                                       group[0] in self.merging, [fingerprints[i] for i in group])
            else:
                # views of its input's parts do only while a later stage writes documents of its own
                views = not self.keep_intermediate and any(not s.passes_through for s in stages[group[0] + 1:])
                done = [self._run_global(index, stages[group[0]], outputs[-1], fingerprints[group[0]], artifacts,
                                         views)]
            outputs += done
            artifacts.update({a: o.dir for i, o in zip(group, done) for a in stages[i].produces})
            manifests += [read_json(o.path(MANIFEST)) for o in done]
        summary = summarize(self.config, manifests)
        write_json(summary, storage.join(self.out, "stats.json"))
        self._check(manifests, summary)
        return summary

    def _check(self, manifests: list[dict], summary: dict | None = None) -> None:
        if self.guards is not None:
            self.guards.check(manifests, summary)

    # -- stages ---------------------------------------------------------------------------

    def _plan(self, tasks: list, stages: list[Stage]) -> list[tuple[str, str]]:
        """(folder name, fingerprint) of every stage this run writes, read first; `_prepare`
        reuses a folder only if it holds the same fingerprint. Where a run of fused map stages
        begins its input's small parts are merged (`self.merging`; with --keep-intermediate
        too, so that writing every stage changes no part)."""
        files = [(f.relpath, f.size) for t in tasks for f in t.files]
        # Storage options (credentials, endpoints) change where bytes come from, not which.
        inputs = [spec.model_dump(exclude={"storage_options"}) for spec in self.config.inputs]
        # exclude_none: `read.limit` unset leaves the fingerprints of earlier runs as they were
        read = self.config.read.model_dump(exclude_none=True)
        fingerprints = [config_hash([__version__, inputs, read, files])]
        # The chain the read stage feeds unwritten takes its chunks as they come (with
        # --keep-intermediate too, so that writing every stage changes no part).
        unmerged = {0} if self.config.read.materialize is False else set()
        self.merging = {g[0] for g in groups(stages) if isinstance(stages[g[0]], MapStage) and g[0] not in unmerged}
        for i, stage in enumerate(stages):
            fingerprints.append(self._fingerprint(stage, fingerprints[-1], i in self.merging))
        names = planned_dirs([s.name for s in stages])
        # What `_stage.json` records beside the fingerprint, and what a changed stage's line compares.
        self.planned = {name: {"params": stage.params.model_dump(mode="json"), "input": previous}
                        for name, stage, previous in zip(names[1:], stages, fingerprints)}
        return list(zip(names, fingerprints))

    def _fingerprint(self, stage: Stage, previous: str, merges: bool = False) -> str:
        """What decides a stage's output: its params and scope, the seed, its input's
        fingerprint (so a change reruns every stage after it) and whether it merges its input's
        parts (the part sizes are in the read stage's fingerprint)."""
        params = stage.params.model_dump(mode="json")
        scope = stage.scope.model_dump(mode="json", exclude_none=True)  # {} for most stages: old fingerprints hold
        return config_hash([__version__, stage.name, params, stage.fingerprint_extra(), self.config.seed,
                            previous, *([scope] if scope else []), *([{"merges_parts": True}] if merges else [])])

    def _done(self, directory: str, fingerprint: str, keep: bool = True, views: bool = False) -> StageOutput | None:
        """The finished output in `directory` if its manifest matches `fingerprint` (and holds
        the documents when `keep` asks for them, as files unless `views` allows views of an
        earlier stage's parts), else None."""
        manifest = storage.join(directory, MANIFEST)
        if not storage.exists(manifest):
            return None
        done = read_json(manifest)
        materialized = done.get("materialized", True)
        if done.get("fingerprint") != fingerprint or (keep and not materialized) or (done.get("views") and not views):
            return None
        parts = tuple(done["parts"])
        rows, sizes = done.get("rows", {}), done.get("bytes", {})
        return StageOutput(directory, fingerprint, parts, _schema_of(directory, done), materialized,
                           tuple(rows[p] for p in parts) if all(p in rows for p in parts) else None,
                           tuple(sizes[p] for p in parts) if all(p in sizes for p in parts) else None)

    def _prepare(self, directory: str, fingerprint: str, keep: bool = True, views: bool = False) -> StageOutput | None:
        """Return the finished output if `directory` already holds it; otherwise make sure
        the directory holds nothing from a different configuration and no uncommitted file."""
        if (done := self._done(directory, fingerprint, keep, views)) is not None:
            log(f"[{storage.basename(directory)}] done already, skipped")
            return done
        self._clean(directory, fingerprint, keep, views=views)
        return None

    def _clean(self, directory: str, fingerprint: str, keep: bool, restart: bool = False, views: bool = False) -> bool:
        """Keep the commit records of an unfinished run of the same stage (same fingerprint,
        documents written or not alike) and delete what they do not list; else (or when
        `restart`) start empty. Returns whether it resumed."""
        marker = storage.join(directory, "_stage.json")
        state = {"fingerprint": fingerprint, "materialized": keep, "views": views}
        recorded = {"materialized": True, "views": False, **read_json(marker)} if storage.exists(marker) else {}
        resumed = not restart and {k: recorded.get(k) for k in state} == state
        if resumed:
            discard_uncommitted(directory)
        else:
            storage.rm(directory)
        storage.makedirs(directory)
        planned = self.planned.get(storage.basename(directory), {})
        write_json({**state, **({"input": planned["input"]} if "input" in planned else {})}, marker)
        return resumed

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
        sizes = {part: size for r in records.values() for part, size in r.get("sizes", {}).items()}
        parts = committed_parts(records.values())
        known = all(p in sizes for p in parts)  # records written before they gave sizes: read the parts
        extra = {"inputs": input_summary(self.config.inputs, tasks, records)}
        return self._finish(directory, "read", "source", {}, fingerprint, stats, time.perf_counter() - start, extra,
                            schema, parts, {p: sizes[p]["rows"] for p in parts} if known else None,
                            {p: sizes[p]["bytes"] for p in parts} if known else None)

    def _fuses_read(self, stages: list[Stage]) -> bool:
        """Whether the read stage feeds the first map stages without writing its documents."""
        return self.config.read.materialize is False and bool(stages) and isinstance(stages[0], MapStage)

    def _run_read_chain(self, tasks: list, folder: str, fingerprint: str, stages: list[MapStage],
                        fingerprints: list[str]) -> list[StageOutput]:
        """The read stage and the first chain of map stages (folders 01, 02, ...) in one task
        per read task, the read documents never written (`read.materialize: false`). A read
        task commits after the chain's records of its chunks, so while the read stage is
        unfinished a task counts as done by its own record; once it is finished (a chain stage
        changed since) every task whose chunks some changed stage lacks reads its files again,
        writing nothing of the read stage's. The read stage's manifest comes last."""
        read_dir = storage.join(self.out, folder)
        dirs = [storage.join(self.out, f"{1 + j:02d}-{s.name}") for j, s in enumerate(stages)]
        keep = [self.keep_intermediate or j == len(stages) - 1 for j in range(len(stages))]
        read_done = self._done(read_dir, fingerprint, keep=False)
        done = [self._done(d, f, k) for d, f, k in zip(dirs, fingerprints, keep)]
        first = next((j for j, d in enumerate(done) if d is None), len(stages))
        for d in ([read_dir] if read_done else []) + dirs[:first]:
            log(f"[{storage.basename(d)}] done already, skipped")
        if read_done is not None and first == len(stages):
            return [read_done, *done]
        restarted = [not self._clean(dirs[j], fingerprints[j], keep[j]) for j in range(first, len(stages))]
        if read_done is None and (not self._clean(read_dir, fingerprint, False) or any(restarted)):
            # A chain stage started afresh under an unfinished read stage: the read records
            # would skip tasks whose chunks that stage never saw, so the read starts afresh too.
            self._clean(read_dir, fingerprint, False, restart=True)
        start = time.perf_counter()
        steps = [Step(stage, d, write=j >= first, keep=keep[j]) for j, (stage, d) in enumerate(zip(stages, dirs))]
        schema = read_schema(self.config.inputs)
        records = commit_records(read_dir)
        name = chain_name([read_dir, *dirs[first:]])
        limit = self.config.read.limit
        if read_done is None:
            todo = [t for t in tasks if task_name(t) not in records]
            log(f"[{name}] started: {len(tasks)} task(s){_resumed(tasks, todo)}{_limited(limit)}, "
                f"{1 + len(stages) - first} stages in one task per read chunk, read documents not written")
            if limit:
                read_limited(self.client, tasks, self.config.inputs, self.config.read, read_dir, schema,
                             self.progress, steps=steps)
            else:
                map_all(self.client, run_read_task, [(t, self.config.inputs[t.input_index]) for t in todo], name,
                        "file", self.progress, options=self.config.read, out_dir=read_dir, schema=schema, steps=steps)
        else:  # rerun the read of the tasks whose chunks a recomputed stage lacks, writing no read output
            computed = {j: committed_names(dirs[j]) for j in range(first, len(stages))}
            todo = [t for t in tasks if task_name(t) in records
                    and any(p not in names for j, names in computed.items()
                            for p in records[task_name(t)]["chain_parts"][j])]
            log(f"[{name}] started: rereading {len(todo)} of {len(tasks)} task(s) for {chain_name(dirs[first:])}")
            map_all(self.client, run_read_task,
                    [(t, self.config.inputs[t.input_index], self.config.read, read_dir, schema,
                      records[task_name(t)]["docs_out"] if limit else None, False) for t in todo],
                    name, "file", self.progress, steps=steps)
        chain_records = [commit_records(d) for d in dirs[first:]]
        chain_stats = [_merge_stats(r) for r in chain_records]
        outputs = done[:first]
        wall = time.perf_counter() - start
        read_stats = _merge_stats(records := commit_records(read_dir))
        shares = share_wall_time(wall, [read_stats.seconds if read_done is None else 0.0]
                                 + [s.seconds for s in chain_stats])
        schemas = list(itertools.accumulate(stages, lambda schema, s: s.output_schema(schema), initial=schema))[1:]
        for j, stage_records, stage_stats, seconds in zip(range(first, len(stages)), chain_records, chain_stats,
                                                          shares[1:]):
            outputs.append(self._finish_map(stages[j], dirs[j], fingerprints[j], stage_stats, seconds, schemas[j],
                                            stage_records, keep[j], dirs))
        if read_done is not None:
            return [read_done, *outputs]
        sizes = {part: size for r in records.values() for part, size in r.get("sizes", {}).items()}
        extra = {"inputs": input_summary(self.config.inputs, tasks, records), "materialized": False,
                 "fused_into": storage.basename(dirs[-1])}
        read = self._finish(read_dir, "read", "source", {}, fingerprint, read_stats, shares[0], extra, schema, [],
                            {p: s["rows"] for p, s in sizes.items()}, {p: s["bytes"] for p, s in sizes.items()})
        return [dataclasses.replace(read, materialized=False), *outputs]

    def _run_chain(self, index: int, stages: list[MapStage], previous: StageOutput, merges: bool,
                   fingerprints: list[str]) -> list[StageOutput]:
        """Run consecutive map stages (folders `index`, `index + 1`, ...) as one task per part
        of `previous` (per group of its small parts when `merges`), writing only the last
        one's documents (pipeline/fuse.py)."""
        dirs = [storage.join(self.out, f"{index + j:02d}-{s.name}") for j, s in enumerate(stages)]
        keep = [j == len(stages) - 1 for j in range(len(stages))]
        done = [self._done(d, f, k) for d, f, k in zip(dirs, fingerprints, keep)]
        first = next((j for j, d in enumerate(done) if d is None), len(stages))  # the first stage to compute
        for d in dirs[:first]:
            log(f"[{storage.basename(d)}] done already, skipped")
        if first == len(stages):
            return done
        # Its input: the nearest earlier stage whose documents were written, else the chain's.
        source = max((j for j in range(first) if done[j].materialized), default=-1)
        source_output = done[source] if source >= 0 else previous
        for j in range(first, len(stages)):
            self._clean(dirs[j], fingerprints[j], keep[j])
        start = time.perf_counter()
        steps = [Step(stages[j], dirs[j], write=j >= first, keep=keep[j]) for j in range(source + 1, len(stages))]
        # A stage of the chain written earlier (--keep-intermediate) holds the groups already.
        self._map_chain(source_output, self._chain_tasks(source_output, merges and source < 0), steps, dirs[first:])
        records = [commit_records(d) for d in dirs[first:]]
        stats = [_merge_stats(r) for r in records]
        wall = share_wall_time(time.perf_counter() - start, [s.seconds for s in stats])
        schemas = list(itertools.accumulate(stages[source + 1:], lambda schema, s: s.output_schema(schema),
                                            initial=source_output.schema))[1:]
        outputs = done[:first]
        for j, stage_records, stage_stats, seconds in zip(range(first, len(stages)), records, stats, wall):
            outputs.append(self._finish_map(stages[j], dirs[j], fingerprints[j], stage_stats, seconds,
                                            schemas[j - source - 1], stage_records, keep[j], dirs))
        return outputs

    def _chain_tasks(self, source: StageOutput, merge: bool) -> list[tuple[list[str], int]]:
        """The chain's tasks: groups of `source`'s parts (each alone unless `merge`), with their bytes."""
        rows, sizes = output_sizes(source)
        if not merge:
            return [([p], n) for p, n in zip(source.parts, sizes)]
        read = self.config.read
        size = dict(zip(source.parts, sizes))
        plan = merge_plan(list(source.parts), rows, sizes, read.max_bytes_per_part, read.max_docs_per_part)
        return [(group, sum(size[p] for p in group)) for group in plan]

    def _map_chain(self, source: StageOutput, plan: list[tuple[list[str], int]], steps: list[Step],
                   computed: list[str]) -> None:
        """Run `steps` over every group of `source`'s parts in `plan` whose output (named after
        its first part) some stage in `computed` has no record of."""
        committed = [committed_names(d) for d in computed]
        todo = [(group, n) for group, n in plan if not all(group[0] in names for names in committed)]
        name = chain_name(computed)
        replayed = [s.dir for s in steps if not s.write]
        merged = f" in {len(plan)} task(s), small parts merged" if len(plan) < len(source.parts) else ""
        log(f"[{name}] started: {len(source.parts)} part(s){merged}{_resumed(plan, todo)}"
            + (f", {len(computed)} stages in one task per part" if len(computed) > 1 else "")
            + (f"; rerunning {chain_name(replayed)} from {source.name}, not written" if replayed else ""))
        todo = [todo[i] for i in largest_first([n for _, n in todo])]
        map_all(self.client, run_chain_part, [([source.path(p) for p in group], group[0]) for group, _ in todo],
                name, "part", self.progress, steps=steps)

    def _finish_map(self, stage: MapStage, directory: str, fingerprint: str, stats: StageStats, wall: float,
                    schema: pa.Schema, records: dict[str, dict], keep: bool, chain: list[str]) -> StageOutput:
        """A map stage's manifest: its parts and rows, or, not materialized, the rows it kept
        per input part and the stage its documents went on to."""
        sizes = {name: (record["rows"], record["bytes"]) if "bytes" in record
                 else parquet_sizes(storage.join(directory, name)) for name, record in sorted(records.items())}
        extra: dict[str, Any] = {"materialized": keep}
        if not keep:
            extra["fused_into"] = storage.basename(chain[-1])
        if len(chain) > 1:
            extra["chain"] = [storage.basename(d) for d in chain]
        parts = committed_parts(records.values()) if keep else []
        output = self._finish(directory, stage.name, stage.kind, stage.params.model_dump(mode="json"), fingerprint,
                              stats, wall, extra, schema, parts, {p: r for p, (r, _) in sizes.items()},
                              {p: n for p, (_, n) in sizes.items()})
        return dataclasses.replace(output, materialized=keep)

    def _run_global(self, index: int, stage: GlobalStage, previous: StageOutput, fingerprint: str,
                    artifacts: dict[str, str], views: bool = False) -> StageOutput:
        directory = storage.join(self.out, f"{index:02d}-{stage.name}")
        if (done := self._prepare(directory, fingerprint, views=views)) is not None:
            return done
        start = time.perf_counter()
        log(f"[{storage.basename(directory)}] started: {len(previous.parts)} part(s), global")
        ctx = GlobalContext(self.client, previous, directory, self.config.seed, self.progress,
                            artifacts={a: artifacts[a] for a in stage.uses if a in artifacts}, views=views)
        result = stage.run(ctx)
        wall = time.perf_counter() - start
        extra = {**result.extra, **({"views": True} if storage.isdir(storage.join(directory, VIEWS)) else {})}
        parts = sorted(result.parts)
        sizes = _global_sizes(stage, directory, parts, previous)
        return self._finish(directory, stage.name, stage.kind, stage.params.model_dump(mode="json"), fingerprint,
                            dataclasses.replace(result.stats, seconds=wall), wall, extra, None, parts,
                            {p: r for p, (r, _) in sizes.items()}, {p: n for p, (_, n) in sizes.items()})

    def _finish(self, directory: str, name: str, kind: str, params: dict, fingerprint: str,
                stats: StageStats, wall: float, extra: dict, schema: pa.Schema | None,
                committed: list[str], rows: dict[str, int] | None = None,
                sizes: dict[str, int] | None = None) -> StageOutput:
        """Write the manifest (last: it marks the stage done) over the committed parts; `rows`
        and `sizes` (bytes) per part when the commit records gave them, else read from the
        parts' footers."""
        parts = tuple(committed)
        if sum(stats.rejected_by_source.values()) != stats.docs_rejected:  # a global stage's own rejected/
            stats.rejected_by_source = count_rejected_files(self.client, directory)
        if rows is None or sizes is None:
            footers = {p: part_sizes(storage.join(directory, p)) for p in parts}
            rows, sizes = {p: r for p, (r, _) in footers.items()}, {p: n for p, (_, n) in footers.items()}
        if schema is None:
            schema = part_schema(storage.join(directory, parts[0])) if parts else pa.schema([])
        manifest = {
            "stage": name,
            "kind": kind,
            "params": params,
            "fingerprint": fingerprint,
            "thresher_version": __version__,
            "wall_seconds": round(wall, 3),
            "parts": list(parts),
            "rows": rows,
            "bytes": sizes,
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
        return StageOutput(directory, fingerprint, parts, schema, rows=tuple(rows[p] for p in parts),
                           sizes=tuple(sizes[p] for p in parts))


def _global_sizes(stage: GlobalStage, directory: str, parts: list[str], previous: StageOutput
                  ) -> dict[str, tuple[int, int]]:
    """Rows and bytes of a global stage's parts: from their commit records where those give
    them (`pipeline.parts.commit_removal`: the same for copies and views), from the input's
    manifest for a stage passing its input through, else from the parts' footers."""
    records = commit_records(directory) if parts else {}
    known = (dict(zip(previous.parts, zip(previous.rows, previous.sizes)))
             if stage.passes_through and previous.rows is not None and previous.sizes is not None else {})
    sizes = {}
    for p in parts:
        record = records.get(p, {})
        sizes[p] = ((record["rows"], record["bytes"]) if "bytes" in record
                    else known.get(p) or part_sizes(storage.join(directory, p)))
    return sizes


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
_TASK_OUTPUTS = ("part-", "rejected/", "signatures/", f"{VIEWS}/")


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


def output_sizes(output: StageOutput) -> tuple[list[int], list[int]]:
    """Rows and bytes of each of `output`'s parts: from its manifest, else the parts' footers."""
    if output.rows is not None and output.sizes is not None:
        return list(output.rows), list(output.sizes)
    footers = [part_sizes(output.path(p)) for p in output.parts]
    return [r for r, _ in footers], [n for _, n in footers]


def _schema_of(directory: str, manifest: dict) -> pa.Schema:
    parts = manifest["parts"]
    return part_schema(storage.join(directory, parts[0])) if parts else pa.schema([])


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
