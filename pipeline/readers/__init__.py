"""Readers: raw input files -> `Document`s, the only place raw formats are seen.

Each reader is a generator over one file that yields, in file order, a `Document` (for
WARC/HTML inputs with the page bytes in `extras["raw"]`), a `Rejected` record (a broken line,
an oversized record: kept with its reason), a `Skipped` record kind (WARC `request`,
`metadata`, `dns:`, non-HTML, non-200 responses: counted, not stored), or a `Quarantined`
problem with the file itself (empty, truncated, corrupt, or not of the input's `format`:
`readers.sniff`; a folder a glob of file names matches; a link that loops or leads nowhere),
after which the reader resumes where it can. Lines are read at most `read.max_record_bytes` at a
time, so an over-long line (or a small `.gz` that inflates to gigabytes in one line) is
rejected while streaming past it, never held whole. Document ids are deterministic
from the origin: `source/relpath@offset` for WARC records, `source/relpath:line` for JSONL,
`source/relpath:row` for Parquet and `source/relpath` for HTML files.

    from pipeline.readers import list_tasks, read_file
    for item in read_file(task.files[0], spec, options): ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import lzma
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import fsspec
import zstandard
from fsspec.spec import AbstractBufferedFile
from fsspec.utils import infer_compression

from pipeline import storage
from pipeline.readers.zstd_frames import cut_short
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
READ_ERRORS = STREAM_ERRORS  # what reading a (compressed) file can raise


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str  # as fsspec understands it
    relpath: str  # relative to the glob's static prefix: part of every document id
    size: int
    problem: Quarantined | None = None  # why it cannot be read at all (a folder, a link loop)


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
    folders = _folders_named_like_files(fs, spec.path)
    files = []
    for path in sorted([*paths, *folders]):
        folder = path in folders
        if (not folder and fs.isdir(path)) or not (is_glob(spec.path) or fs.exists(path)):
            continue
        rel = path[len(prefix):].lstrip("/") if prefix and path.startswith(prefix) else path.rsplit("/", 1)[-1]
        url = fs.unstrip_protocol(path) if "://" in spec.path else path
        if folder:
            files.append(InputFile(url, rel, 0, Quarantined("read.not_a_file", f"{rel} is a folder, not a file")))
            continue
        try:
            files.append(InputFile(url, rel, fs.size(path)))
        except OSError as error:  # a link that loops or leads nowhere: the run goes on without it
            detail = f"{rel} cannot be opened: {error.strerror or error}"
            files.append(InputFile(url, rel, 0, Quarantined("read.unreadable_file", detail)))
    return files


def _folders_named_like_files(fs, pattern: str) -> set[str]:
    """Folders matched by a glob whose last part names a file type (`*.jsonl`): a mistake
    worth a quarantine entry (fsspec leaves folders out); `data/*` or `**` match folders on
    purpose."""
    if not (is_glob(pattern) and "." in pattern.rsplit("/", 1)[-1]):
        return set()
    found = fs.glob(fs._strip_protocol(pattern), detail=True)
    return {path for path, info in found.items() if info.get("type") == "directory"}


def list_tasks(inputs: list[InputSpec], options: ReadOptions) -> list[ReadTask]:
    """Split the inputs into read tasks: one per WARC/JSONL/Parquet file (consecutive small
    ones together up to `max_bytes_per_part` on disk when the read stage is not written), and
    groups of `options.files_per_task` HTML files. Raises ValueError naming the input that matches
    no file."""
    tasks: list[ReadTask] = []
    for i, spec in enumerate(inputs):
        files = list_files(spec)
        if not files:
            raise ValueError(no_files_message(i, spec))
        if spec.format == "html":
            step = options.files_per_task
            batches = [files[start:start + step] for start in range(0, len(files), step)]
        elif options.materialize is False:  # no later task merges the parts of an unwritten read: group small files
            batches = _by_size(files, options.max_bytes_per_part, options.files_per_task)
        else:
            batches = [[f] for f in files]
        for batch in batches:
            tasks.append(ReadTask(len(tasks), i, tuple(batch)))
    return tasks


def _by_size(files: list[InputFile], max_bytes: int, max_files: int) -> list[list[InputFile]]:
    """Consecutive files grouped while their sizes on disk add up to at most `max_bytes` (and
    `max_files` files); a larger file is a group alone."""
    batches: list[list[InputFile]] = []
    total = 0
    for file in files:
        if not batches or total + file.size > max_bytes or len(batches[-1]) >= max_files:
            batches.append([])
            total = 0
        batches[-1].append(file)
        total += file.size
    return batches


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
    if file.problem is not None:
        yield file.problem
        return
    if file.size == 0:
        yield Quarantined("read.empty_file", f"{file.relpath} is empty")
        return
    if (problem := wrong_format(file, spec)) is not None:
        yield problem
        return
    yield from reader[spec.format](file, spec, options)


def base_document(spec: InputSpec, doc_id: str, **fields) -> Document:
    return Document(id=doc_id, source=spec.source, domain=spec.domain, **fields)


@contextlib.contextmanager
def open_decompressed(file: InputFile, spec: InputSpec) -> Iterator[IO[bytes]]:
    """`file`'s bytes, decompressed as its name says (`.gz`, `.bz2`, `.xz`, `.zst`). fsspec's
    zstd reader has no `readline` (every `.zst` line read failed) and stops after the first
    frame, so `.zst` is read here, across frames, and a cut one raises EOFError at its end
    as a cut `.gz` does."""
    options = spec.storage_options or {}
    if infer_compression(file.path) != "zstd":
        with storage.open(file.path, "rb", compression="infer", **options) as f:
            # an object store's file (s3fs, gcsfs) takes no size in readline(): buffer it
            yield io.BufferedReader(f) if isinstance(f, AbstractBufferedFile) else f
        return
    with storage.open(file.path, "rb", **options) as raw:
        yield io.BufferedReader(_ZstdStream(raw, file, spec))


class _ZstdStream(io.RawIOBase):
    """A `.zst` file's bytes across frames; at the end, EOFError if its last frame is cut
    (zstandard's reader ends quietly there)."""

    def __init__(self, raw: IO[bytes], file: InputFile, spec: InputSpec):
        self.reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
        self.file, self.spec, self.checked = file, spec, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.reader.readinto(buffer)
        if n == 0 and not self.checked:
            self.checked = True
            with storage.open(self.file.path, "rb", **(self.spec.storage_options or {})) as f:
                if (problem := cut_short(f)) is not None:
                    raise EOFError(f"zstd data ends early: {problem}")
        return n


def quarantine_reason(error: Exception) -> str:
    """A stream that ends mid-way is truncated; any other decoding error makes it corrupt."""
    return "read.truncated_file" if isinstance(error, EOFError) else "read.corrupt_file"


def bounded_lines(f: IO[bytes], limit: int) -> Iterator[tuple[bytes, bool]]:
    """(line, False) for each line of `f` up to `limit` bytes (its newline included), and
    (its first `limit` bytes, True) for a longer one, after streaming past the rest of it."""
    while line := f.readline(limit + 1):
        if len(line) <= limit:
            yield line, False
            continue
        end = line.endswith(b"\n")
        while not end and (rest := f.readline(1 << 20)):
            end = rest.endswith(b"\n")
        yield line[:limit], True
