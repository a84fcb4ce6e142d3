"""JSON-lines reader (`.jsonl`, `.json`, optionally `.gz`/`.zst`): one document per line,
its text in `spec.text_field` and its URL in `spec.url_field` (dotted paths such as
`metadata.url` reach into nested objects). Every other field is kept in `metadata`.
A line that is not valid UTF-8 or JSON, holds a lone UTF-16 surrogate escape, or has no text,
is rejected with its reason and its raw line (a line over `read.max_record_bytes` with its first
bytes only, never read whole); a compressed file cut short or damaged is quarantined after the
lines read so far, and one that holds nothing once decompressed is quarantined as empty."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipeline.readers import (
    STREAM_ERRORS,
    InputFile,
    Quarantined,
    ReadItem,
    Rejected,
    Skipped,
    base_document,
    bounded_lines,
    describe,
    open_decompressed,
    quarantine_reason,
)
from pipeline.record import Document


def get_dotted(obj: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def record_to_document(record: dict[str, Any], doc_id: str, spec) -> Document | Rejected:
    """A parsed record (JSONL line or Parquet row) as a Document, or why it cannot be one."""
    text = get_dotted(record, spec.text_field)
    url = get_dotted(record, spec.url_field)
    metadata = {k: v for k, v in record.items() if k != spec.text_field}
    doc = base_document(spec, doc_id, url=url if isinstance(url, str) else None, metadata=metadata)
    if text is None:
        return Rejected(doc, "read.missing_text_field")
    if not isinstance(text, str):  # a number, a list, an object: say so, not "missing"
        return Rejected(doc, "read.text_not_a_string")
    return doc.replace(text=text)


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    line_no = 0
    try:
        with open_decompressed(file, spec) as f:
            for line_no, (line, too_long) in enumerate(bounded_lines(f, options.max_record_bytes), start=1):
                yield _parse_line(line, too_long, f"{spec.source}/{file.relpath}:{line_no}", spec)
    except STREAM_ERRORS as error:
        yield Quarantined(quarantine_reason(error), f"{file.relpath} after line {line_no}: {describe(error)}")
        return
    if line_no == 0:
        yield Quarantined("read.empty_file", f"{file.relpath} holds no bytes once decompressed")


def _parse_line(line: bytes, too_long: bool, doc_id: str, spec) -> ReadItem:
    broken = base_document(spec, doc_id)
    if too_long:
        return Rejected(broken.replace(text=line.decode("utf-8", "replace")), "read.record_too_large")
    if not line.strip():
        return Skipped("blank_line")
    line = line.rstrip(b"\r\n")
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected(broken.replace(text=line.decode("utf-8", "replace")), "read.invalid_utf8")
    try:
        record = json.loads(decoded)
    except ValueError as error:  # JSONDecodeError, or an integer over CPython's 4300 digits
        return Rejected(broken.replace(text=decoded, metadata={"error": str(error)}), "read.invalid_json")
    if not isinstance(record, dict):
        return Rejected(broken.replace(text=decoded), "read.not_an_object")
    if "\\u" in decoded and _has_lone_surrogate(record):
        return Rejected(broken.replace(text=decoded), "read.invalid_unicode")
    return record_to_document(record, doc_id, spec)


def _has_lone_surrogate(record: dict) -> bool:
    """True when an escape such as `\\ud800` left half a UTF-16 pair in a string: valid JSON, but
    no Unicode character, and Arrow cannot write it (only escapes can: the line is valid UTF-8)."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
