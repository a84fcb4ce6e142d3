"""HTML file reader (`.html`, `.htm`, optionally `.gz`/`.zst` compressed): one page per
file, the bytes kept as they are for the extract stage (which detects the charset); the
document carries its file path in `metadata["path"]`."""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.readers import (
    STREAM_ERRORS,
    InputFile,
    Quarantined,
    ReadItem,
    Rejected,
    base_document,
    describe,
    open_decompressed,
)


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    try:
        with open_decompressed(file, spec) as f:
            body = f.read(options.max_record_bytes + 1)
    except STREAM_ERRORS as error:
        yield Quarantined("read.unreadable_file", f"{file.relpath}: {describe(error)}")
        return
    if not body:
        yield Quarantined("read.empty_file", f"{file.relpath} holds no bytes once decompressed")
        return
    doc = base_document(spec, f"{spec.source}/{file.relpath}", metadata={"path": file.relpath})
    if len(body) > options.max_record_bytes:
        doc.metadata["truncated_at"] = options.max_record_bytes
        yield Rejected(doc.replace(extras={"raw": body[: options.max_record_bytes]}), "read.record_too_large")
        return
    yield doc.replace(extras={"raw": body})
