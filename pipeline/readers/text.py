"""Plain-text reader (`.txt`, optionally `.gz`/`.zst`): one document per file, or, with
`separator` (a regex), a new document at every line that matches it; the matching line
starts the document (WikiText's ` = Title = ` headings: `separator: "^ = [^=].* = $"`).
Ids are `source/relpath:line` of each document's first line. Invalid UTF-8 bytes are
replaced (U+FFFD). A document over `read.max_record_bytes` is rejected with its first bytes
only (read line by line, never whole); a compressed file cut short or corrupt is quarantined
after the documents read so far."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipeline.readers import (
    STREAM_ERRORS,
    InputFile,
    Quarantined,
    ReadItem,
    Rejected,
    base_document,
    bounded_lines,
    describe,
    open_decompressed,
    quarantine_reason,
)


class _Lines:
    """The lines of one document so far, kept up to `limit` bytes."""

    def __init__(self, start: int, limit: int):
        self.start, self.limit, self.lines, self.n_bytes, self.too_large = start, limit, [], 0, False

    def add(self, raw: bytes, too_long: bool) -> None:
        room = self.limit - self.n_bytes
        self.too_large |= too_long or len(raw) > room
        if room > 0:
            self.lines.append(raw[:room].decode("utf-8", "replace"))
            self.n_bytes += min(len(raw), room)


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    pattern = re.compile(spec.separator) if spec.separator else None
    doc = _Lines(1, options.max_record_bytes)
    try:
        with open_decompressed(file, spec) as f:
            for line_no, (raw, too_long) in enumerate(bounded_lines(f, options.max_record_bytes), start=1):
                if pattern is not None and doc.lines and pattern.match(raw.decode("utf-8", "replace").rstrip("\r\n")):
                    yield from _emit(doc, file, spec)
                    doc = _Lines(line_no, options.max_record_bytes)
                doc.add(raw, too_long)
    except STREAM_ERRORS as error:
        yield Quarantined(quarantine_reason(error), f"{file.relpath}: {describe(error)}")
    yield from _emit(doc, file, spec)


def _emit(doc: _Lines, file: InputFile, spec) -> Iterator[ReadItem]:
    text = "".join(doc.lines).strip()
    if not text:
        return
    out = base_document(spec, f"{spec.source}/{file.relpath}:{doc.start}", text=text, metadata={"path": file.relpath})
    if doc.too_large:
        out.metadata["truncated_at"] = doc.limit
        yield Rejected(out, "read.record_too_large")
    else:
        yield out
