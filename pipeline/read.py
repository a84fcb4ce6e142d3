"""The read stage (always stage 00): input files -> `00-read/part-TTTTT-CCCC.parquet`.

One task per WARC/JSONL/Parquet file (or per group of HTML files); a task writes its
documents in chunks of at most `read.max_bytes_per_part` bytes (of page bytes when the
documents are pages, else of text) and, if set, `max_docs_per_part` documents, its rejected
records beside them, and its `StageStats` (skipped record kinds, quarantined files), the names
of the files it wrote and each part's rows and bytes last: that commit record marks the task
done for a resumed run, and only parts it lists count.

With `read.materialize: false` and a map stage first, the read stage writes no documents: each
chunk goes straight through the first chain of map stages in the same task (`steps`,
pipeline/fuse.py), which writes its stages' outputs under the chunk's name before the read
task's commit record, so a raw crawl is never copied to Parquet. The record still lists the
chunks' rows and bytes, and the read stage keeps its rejected records and stats.

With `read.limit: N` (`thresher run --sample N`) each input gives its first N documents (rejected
records do not count): an input's tasks run one after another, each asked for what its input
still lacks, and the inputs side by side (`read_limited`), so the sample is the same documents
on any number of workers, and a task reads no further than it must.
"""

from __future__ import annotations

import time

import pyarrow as pa

from pipeline import storage
from pipeline.fuse import ChainBuffer, Step
from pipeline.io import COMMITS, commit, read_json, write_parquet
from pipeline.options import InputSpec, ReadOptions
from pipeline.progress import map_all
from pipeline.readers import Quarantined, ReadTask, Rejected, Skipped, read_file
from pipeline.record import (
    DOCUMENT_SCHEMA,
    RAW_FIELD,
    Document,
    documents_to_table,
    rejected_schema,
    rejected_to_table,
)
from pipeline.stats import StageStats


def read_schema(inputs: list[InputSpec]) -> pa.Schema:
    has_pages = any(spec.format in ("warc", "html") for spec in inputs)
    return DOCUMENT_SCHEMA.append(RAW_FIELD) if has_pages else DOCUMENT_SCHEMA


def doc_bytes(doc: Document) -> int:
    raw = doc.extras.get("raw")
    return len(raw) if raw is not None else doc.n_bytes


class _ChunkWriter:
    """Collects a task's documents and writes a part whenever a chunk is full (or, with
    `steps`, runs the chunk through them; with `write` false, writes nothing of its own)."""

    def __init__(self, task: ReadTask, out_dir: str, schema: pa.Schema, options: ReadOptions,
                 steps: list[Step] | None = None, write: bool = True):
        self.task, self.out_dir, self.schema, self.options = task, out_dir, schema, options
        self.write = write
        self.sink = ChainBuffer(steps, options.max_bytes_per_part, options.max_docs_per_part) if steps else None
        self.chain_seconds = 0.0  # spent in `steps`: theirs, not the read stage's
        self.files: list[str] = []
        self.sizes: dict[str, dict] = {}  # part -> rows and bytes, for the merge plans after it
        self.docs: list[Document] = []
        self.rejected: list[tuple[Document, str, str]] = []
        self.n_bytes = 0
        self.chunk = 0

    def add(self, doc: Document) -> None:
        self.docs.append(doc)
        self.n_bytes += doc_bytes(doc)
        max_docs = self.options.max_docs_per_part
        if (max_docs is not None and len(self.docs) >= max_docs) or self.n_bytes >= self.options.max_bytes_per_part:
            self.flush()

    def add_rejected(self, doc: Document, reason: str) -> None:
        self.rejected.append((doc, "read", reason))

    def close(self) -> dict:
        """Write what is left; returns the commit record's fields beyond the stats."""
        self.flush(last=True)
        if self.sink is None:
            return {"sizes": self.sizes}
        start = time.perf_counter()
        self.sink.flush()
        self.chain_seconds += time.perf_counter() - start
        return {"sizes": self.sizes, "chain_parts": self.sink.parts}

    def flush(self, last: bool = False) -> None:
        if not self.docs and not self.rejected and not (last and self.chunk == 0):
            return
        name = f"part-{self.task.index:05d}-{self.chunk:04d}.parquet"
        if self.rejected and self.write:
            table = rejected_to_table(self.rejected, rejected_schema(self.schema))
            write_parquet(table, storage.join(self.out_dir, "rejected", name))
            self.files.append(f"rejected/{name}")
        table = documents_to_table(self.docs, self.schema)
        if self.sink is not None:
            start = time.perf_counter()
            self.sink.add(table, name)
            self.chain_seconds += time.perf_counter() - start
        elif self.write:
            write_parquet(table, storage.join(self.out_dir, name))
            self.files.append(name)
        self.sizes[name] = {"rows": len(self.docs), "bytes": self.n_bytes}
        self.docs, self.rejected, self.n_bytes = [], [], 0
        self.chunk += 1


def run_read_task(task: ReadTask, spec: InputSpec, options: ReadOptions, out_dir: str, schema: pa.Schema,
                  limit: int | None = None, write: bool = True, steps: list[Step] | None = None) -> dict:
    """Read every file of `task` (stop after `limit` documents); runs on a Dask worker. With
    `steps`, each chunk runs through them instead of being written; with `write` false
    (the read stage finished already, a chain after it did not), the task writes no file and
    no record of its own. Returns the task's stats as a dict."""
    start = time.perf_counter()
    stats = StageStats()
    writer = _ChunkWriter(task, out_dir, schema, options, steps, write)
    for file in task.files:
        if limit is not None and stats.docs_out >= limit:
            break
        stats.count("files")
        for item in read_file(file, spec, options):
            _account(item, writer, stats, file.relpath)
            if limit is not None and stats.docs_out >= limit:
                break
    written = writer.close()
    stats.seconds = time.perf_counter() - start - writer.chain_seconds
    result = stats.to_dict()
    if write:
        commit(out_dir, f"task-{task.index:05d}", {**result, **written}, writer.files)
    return result


def _account(item, writer: _ChunkWriter, stats: StageStats, relpath: str) -> None:
    if isinstance(item, Document):
        stats.docs_out += 1
        stats.bytes_out += doc_bytes(item)
        writer.add(item)
    elif isinstance(item, Rejected):
        stats.reject(item.reason, doc_bytes(item.doc), source=item.doc.source)
        writer.add_rejected(item.doc, item.reason)
    elif isinstance(item, Skipped):
        stats.count(f"skipped.{item.kind}")
    elif isinstance(item, Quarantined):
        stats.count(f"quarantined.{item.reason}")
        stats.quarantine.append({"file": relpath, "reason": item.reason, "detail": item.detail})
    stats.docs_in = stats.docs_out + stats.docs_rejected
    stats.bytes_in = stats.bytes_out + stats.bytes_rejected


def input_summary(inputs: list[InputSpec], tasks: list[ReadTask], records: dict[str, dict]) -> list[dict]:
    """Per input, in config order, what its read tasks' commit records say: documents read and
    kept, rejections and skipped records by reason, quarantined files by reason. Goes into the
    read stage's manifest (`inputs`), where the guards find an input that yielded nothing."""
    per_input = [StageStats() for _ in inputs]
    files = [0] * len(inputs)
    for task in tasks:
        files[task.input_index] += len(task.files)
        if (record := records.get(task_name(task))) is not None:  # a limited read leaves some tasks out
            per_input[task.input_index] += StageStats.from_dict(record)
    out = []
    for index, (spec, stats) in enumerate(zip(inputs, per_input)):
        quarantined: dict[str, set[str]] = {}
        for entry in stats.quarantine:
            quarantined.setdefault(entry["reason"], set()).add(entry["file"])
        out.append({"index": index, "path": spec.path, "source": spec.source, "domain": spec.domain,
                    "files": files[index], "docs_in": stats.docs_in, "docs_out": stats.docs_out,
                    "rejected": dict(stats.rejected.most_common()),
                    "skipped": {k: v for k, v in stats.counters.most_common() if k.startswith("skipped.")},
                    "quarantined_files": {r: sorted(f) for r, f in sorted(quarantined.items())}})
    return out


def task_name(task: ReadTask) -> str:
    return f"task-{task.index:05d}"


def read_limited(client, tasks: list[ReadTask], inputs: list[InputSpec], options: ReadOptions, out_dir: str,
                 schema: pa.Schema, progress: bool, steps: list[Step] | None = None) -> None:
    """Run the read tasks that `options.limit` needs, in waves: each wave holds the next task
    of every input still short of `limit` documents, asked for what that input lacks."""
    queues = {i: [t for t in tasks if t.input_index == i] for i in range(len(inputs))}
    lacking = dict.fromkeys(queues, options.limit)
    while True:
        wave = []
        for i, queue in queues.items():
            if (task := _next_task(queue, lacking, i, out_dir)) is not None:
                wave.append((task, lacking[i]))
        if not wave:
            return
        rows = [(task, inputs[task.input_index], options, out_dir, schema, limit) for task, limit in wave]
        for (task, _), result in zip(wave, map_all(client, run_read_task, rows, storage.basename(out_dir), "file",
                                                   progress, steps=steps)):
            lacking[task.input_index] -= result["docs_out"]


def _next_task(queue: list[ReadTask], lacking: dict[int, int], i: int, out_dir: str) -> ReadTask | None:
    """The next task of input `i` to run, or None when it has enough documents or no file
    left. A task committed by an earlier, killed run is not run again: its record's
    documents count."""
    while queue and lacking[i] > 0:
        task = queue.pop(0)
        record = storage.join(out_dir, COMMITS, f"{task_name(task)}.json")
        if not storage.exists(record):
            return task
        lacking[i] -= read_json(record)["docs_out"]
    return None
