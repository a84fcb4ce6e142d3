"""Readers: raw input files -> `Document`s, the only place raw formats are seen.

Each reader is a generator over one file that yields, in file order, a `Document` (for
WARC/HTML inputs with the page bytes in `extras["raw"]`), a `Rejected` record (a broken line,
an oversized record: kept with its reason), a `Skipped` record kind (WARC `request`,
`metadata`, `dns:`, non-HTML, non-200 responses: counted, not stored), or a `Quarantined`
problem with the file itself (empty, truncated, corrupt, or not of the input's `format`:
`readers.sniff`), after which the reader resumes where it can. Document ids are deterministic
from the origin: `source/relpath@offset` for WARC records, `source/relpath:line` for JSONL,
`source/relpath:row` for Parquet and `source/relpath` for HTML files.

    from pipeline.readers import list_tasks, read_file
    for item in read_file(task.files[0], spec, options): ...
"""

from __future__ import annotations

import dataclasses
import lzma
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import fsspec
import zstandard

from pipeline import storage
from pipeline.record import Document

if TYPE_CHECKING:
    from pipeline.options import InputSpec, ReadOptions


@dataclasses.dataclass(frozen=True)
class Skipped:
    kind: str


@dataclasses.dataclass(frozen=True)
class Rejected:
    doc: Document
    reason: str


@dataclasses.dataclass(frozen=True)
class Quarantined:
    reason: str
    detail: str


# What reading a damaged compressed file raises, per codec: gzip OSError, EOFError or zlib.error;
# bz2 OSError or ValueError; xz LZMAError; zstandard ZstdError (neither of the last two is an
# OSError: a damaged .zst or .xz file escaped the readers, found by tests/pipeline/test_fuzz_readers.py).
STREAM_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


def describe(error: Exception) -> str:
    """`error` as one line, `Type: message` (parsers' messages may span lines)."""
    return " ".join(f"{type(error).__name__}: {error}".split())


ReadItem = Document | Skipped | Rejected | Quarantined


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str  # as fsspec understands it
    relpath: str  # relative to the glob's static prefix: part of every document id
    size: int


@dataclasses.dataclass(frozen=True)
class ReadTask:
    index: int
    input_index: int
    files: tuple[InputFile, ...]


def static_prefix(pattern: str) -> str:
    """The directory part of `pattern` before its first glob character."""
    cut = min((i for i, ch in enumerate(pattern) if ch in "*?["), default=len(pattern))
    head = pattern[:cut]
    return head[: head.rfind("/") + 1] if "/" in head else ""


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def list_files(spec: InputSpec) -> list[InputFile]:
    """The files `spec.path` names (a literal path that does not exist names none)."""
    options = spec.storage_options or storage.options_for(spec.path)
    fs, _, paths = fsspec.core.get_fs_token_paths(spec.path, storage_options=options)
    prefix = fs._strip_protocol(static_prefix(spec.path)) if static_prefix(spec.path) else ""
    files = []
    for path in sorted(paths):
        if fs.isdir(path) or not (is_glob(spec.path) or fs.exists(path)):
            continue
        rel = path[len(prefix):].lstrip("/") if prefix and path.startswith(prefix) else path.rsplit("/", 1)[-1]
        files.append(InputFile(fs.unstrip_protocol(path) if "://" in spec.path else path, rel, fs.size(path)))
    return files


def list_tasks(inputs: list[InputSpec], options: ReadOptions) -> list[ReadTask]:
    """Split the inputs into read tasks: one per WARC/JSONL/Parquet file, and groups of
    `options.files_per_task` HTML files. Raises ValueError naming the input that matches
    no file."""
    tasks: list[ReadTask] = []
    for i, spec in enumerate(inputs):
        files = list_files(spec)
        if not files:
            raise ValueError(no_files_message(i, spec))
        step = options.files_per_task if spec.format == "html" else 1
        for start in range(0, len(files), step):
            tasks.append(ReadTask(len(tasks), i, tuple(files[start : start + step])))
    return tasks


def no_files_message(index: int, spec: InputSpec) -> str:
    """Why input `index` names no file, as a one-line error naming `inputs[index].path`."""
    if is_glob(spec.path):
        return f"inputs[{index}].path: no files match {spec.path!r}"
    if storage.isdir(spec.path):
        return f"inputs[{index}].path: {spec.path!r} is a folder; name its files, e.g. {spec.path.rstrip('/')}/*"
    return f"inputs[{index}].path: {spec.path!r} does not exist"


def read_file(file: InputFile, spec: InputSpec, options: ReadOptions) -> Iterator[ReadItem]:
    from pipeline.readers import html, jsonl, parquet, text, warc
    from pipeline.readers.sniff import wrong_format

    reader = {"warc": warc.read, "html": html.read, "jsonl": jsonl.read, "parquet": parquet.read, "text": text.read}
    if file.size == 0:
        yield Quarantined("read.empty_file", f"{file.relpath} is empty")
        return
    if (problem := wrong_format(file, spec)) is not None:
        yield problem
        return
    yield from reader[spec.format](file, spec, options)


def base_document(spec: InputSpec, doc_id: str, **fields) -> Document:
    return Document(id=doc_id, source=spec.source, domain=spec.domain, **fields)
