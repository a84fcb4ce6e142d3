"""Plain-text reader (`.txt`, optionally `.gz`/`.zst`): one document per file, or, with
`separator` (a regex), a new document at every line that matches it; the matching line
starts the document (WikiText's ` = Title = ` headings: `separator: "^ = [^=].* = $"`).
Ids are `source/relpath:line` of each document's first line. Invalid UTF-8 bytes are
replaced (U+FFFD)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipeline import storage
from pipeline.readers import STREAM_ERRORS, InputFile, Quarantined, ReadItem, base_document, describe


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    pattern = re.compile(spec.separator) if spec.separator else None
    lines: list[str] = []
    start = 1
    try:
        with storage.open_lines(file.path, **(spec.storage_options or {})) as f:
            for line_no, raw in enumerate(f, start=1):
                line = raw.decode("utf-8", "replace")
                if pattern is not None and pattern.match(line.rstrip("\r\n")) and lines:
                    yield from _emit(lines, start, file, spec)
                    lines, start = [], line_no
                lines.append(line)
    except STREAM_ERRORS as error:
        yield Quarantined("read.truncated_file", f"{file.relpath}: {describe(error)}")
    yield from _emit(lines, start, file, spec)


def _emit(lines: list[str], start: int, file: InputFile, spec) -> Iterator[ReadItem]:
    text = "".join(lines).strip()
    if text:
        yield base_document(spec, f"{spec.source}/{file.relpath}:{start}", text=text, metadata={"path": file.relpath})
