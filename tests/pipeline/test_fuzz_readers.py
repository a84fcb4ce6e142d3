"""Fuzzed readers (hypothesis): damaged WARC, JSON-lines, Parquet and text files never raise.

The readers' contract (pipeline/readers/__init__.py): every input yields, in file order,
documents, rejected records with a reason, skipped record kinds, or quarantined problems with
the file; and what the read task then writes must be writable (the documents and the rejected
records go into Arrow tables). Beyond "no uncaught exception", each target checks what holds
for every input: reasons are `read.*` names, quarantine details are one line, document ids are
unique, and an undamaged file yields what it holds. `bench/fuzz.py` runs these targets longer.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import example, given

from pipeline.options import InputSpec, ReadOptions
from pipeline.read import read_schema
from pipeline.readers import InputFile, Quarantined, Rejected, Skipped, read_file
from pipeline.record import Document, documents_to_table, rejected_schema, rejected_to_table
from tests.fuzzing import CI_SETTINGS, Scratch, Target
from tests.pipeline.fuzz_inputs import MAX_RECORD_BYTES, jsonl_files, parquet_files, text_files, warc_files

OPTIONS = ReadOptions(max_record_bytes=MAX_RECORD_BYTES)  # small, so that "too large" is reached too
QUARANTINE_REASONS = {"read.empty_file", "read.wrong_format", "read.truncated_file", "read.corrupt_record",
                      "read.unreadable_file", "read.corrupt_file"}
FILE_REFUSALS = {"read.empty_file", "read.wrong_format"}  # the whole file, before its reader sees it


def read_bytes(name: str, data: bytes, fmt: str, **spec_fields) -> list:
    """Every item the reader yields for a file `name` holding `data`, checked against the
    contract and converted to the tables the read task writes."""
    spec = InputSpec(path=str(Scratch.write(name, data)), format=fmt, source="fuzz", **spec_fields)
    items = list(read_file(InputFile(spec.path, name, len(data)), spec, OPTIONS))
    docs = [item for item in items if isinstance(item, Document)]
    rejected = [item for item in items if isinstance(item, Rejected)]
    for item in items:
        assert isinstance(item, Document | Rejected | Skipped | Quarantined), item
        if isinstance(item, Quarantined):
            assert item.reason in QUARANTINE_REASONS and "\n" not in item.detail, item
        if isinstance(item, Skipped):  # a stats key: a short token, whatever the record holds
            assert re.fullmatch(r"[a-z][a-z0-9_+.-]{0,31}", item.kind), item
        if isinstance(item, Rejected):
            assert item.reason.startswith("read.") and item.doc.id.startswith("fuzz/"), item
    # ids end in the record's place (`@offset`, `:line`, `:row`): in file order, each once
    places = [int(re.split("[@:]", doc.id)[-1]) for doc in (i.doc if isinstance(i, Rejected) else i
                                                            for i in items if isinstance(i, Document | Rejected))]
    assert places == sorted(set(places)), f"document ids out of file order or repeated: {places}"
    schema = read_schema([spec])
    documents_to_table(docs, schema)
    rejected_to_table([(item.doc, "read", item.reason) for item in rejected], rejected_schema(schema))
    return items


def check_warc(value: tuple[str, bytes, int | None]) -> None:
    name, data, expected = value
    items = read_bytes(name, data, "warc")
    if expected is not None:  # an undamaged file: every HTML 200 response, nothing quarantined
        assert not [item for item in items if isinstance(item, Quarantined)], items
        assert sum(isinstance(item, Document) for item in items) == expected, items


def check_jsonl(value: tuple[str, bytes, int | None]) -> None:
    name, data, lines = value
    items = read_bytes(name, data, "jsonl")
    refused = len(items) == 1 and isinstance(items[0], Quarantined) and items[0].reason in FILE_REFUSALS
    if lines is not None and not refused:  # an undamaged file: one item per line, none quarantined
        assert len(items) == lines and not any(isinstance(item, Quarantined) for item in items), items


def check_parquet(value: tuple[str, bytes, int | None]) -> None:
    name, data, rows = value
    items = read_bytes(name, data, "parquet")
    if rows is not None:  # an undamaged file: one document or rejected record per row
        assert len(items) == rows and all(isinstance(item, Document | Rejected) for item in items), items


def check_text(value: tuple[str, bytes, bool]) -> None:
    name, data, undamaged = value
    items = read_bytes(name, data, "text", separator=r"^ = [^=].* = $")
    refused = len(items) == 1 and isinstance(items[0], Quarantined) and items[0].reason in FILE_REFUSALS
    assert all(isinstance(item, Document | Quarantined) for item in items), items
    if undamaged and not refused:  # every character but whitespace lands in a document, in order
        text = _decompressed(name, data).decode("utf-8", "replace")
        assert not any(isinstance(item, Quarantined) for item in items), items
        assert "".join("".join(item.text.split()) for item in items) == "".join(text.split()), items


def _decompressed(name: str, data: bytes) -> bytes:
    """`data` decompressed as `name`'s extension says."""
    suffix = name.rsplit(".", 1)[1]
    return {"gz": gzip.decompress, "zst": lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d),
            "bz2": bz2.decompress, "xz": lzma.decompress}.get(suffix, lambda d: d)(data)


def two_records_then_bad_length() -> bytes:
    """Three gzip members: two HTML responses, then one with `Content-Length: twelve`."""
    record = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://example.com/a\r\n"
              b"Content-Length: %s\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n%s\r\n\r\n")
    good = gzip.compress(record % (b"44", b""), mtime=0)
    return good + good + gzip.compress(record % (b"twelve", b"<p>" + b"x" * 8192 + b"</p>"), mtime=0)


def damaged_footer() -> bytes:
    """A one-row Parquet file whose footer's last byte is flipped (thrift cannot read it)."""
    sink = io.BytesIO()
    pq.write_table(pa.table({"text": ["a"]}), sink)
    data = sink.getvalue()
    return data[:-9] + bytes([data[-9] ^ 0xFF]) + data[-8:]


TARGETS = {
    "warc_reader": Target(warc_files(), check_warc),
    "jsonl_reader": Target(jsonl_files(), check_jsonl),
    "parquet_reader": Target(parquet_files(), check_parquet),
    "text_reader": Target(text_files(), check_text),
}


@CI_SETTINGS
@given(warc_files())
# found by fuzzing: a response record without WARC-Target-URI (warcio raised AttributeError);
# a target URI without a scheme became a skipped-record kind (a stats key) as it was
@example(("crawl.warc", b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: ../../etc/passwd\r\n"
                        b"Content-Length: 4\r\n\r\nabcd\r\n\r\n", 0))
@example(("crawl.warc", b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 4\r\n\r\nabcd\r\n\r\n", None))
# ... and a record whose Content-Length is not a number sent warcio's offset back to 0: the
# reader resynced before the record it had just read and yielded it twice
@example(("crawl.warc.gz", two_records_then_bad_length(), None))
def test_warc_reader_never_raises(value):
    check_warc(value)


@CI_SETTINGS
@given(jsonl_files())
# found by fuzzing: a lone surrogate escape crashed the part writer; an integer over 4300 digits
# quarantined the rest of the file as truncated
@example(("part.jsonl", b'{"text": "", "s": "\\ud800"}\n', 1))
@example(("part.jsonl", b'{"text": "x", "n": ' + b"7" * 4301 + b'}\n{"text": "y"}\n', 2))
# found by fuzzing: no .zst file could be read (zstandard's reader has no readline)
@example(("part.jsonl.zst", zstandard.ZstdCompressor().compress(b'{"text": "a"}\n'), 1))
# ... and then that a damaged one raised zstandard.ZstdError (no OSError) out of the reader
@example(("part.jsonl.zst", b"(\xb5/\xfd \x00\x01\x00\x01", None))
def test_jsonl_reader_never_raises(value):
    check_jsonl(value)


@CI_SETTINGS
@given(parquet_files())
# found by fuzzing: pyarrow's multi-line message made a quarantine detail of two lines
@example(("part.parquet", damaged_footer(), None))
def test_parquet_reader_never_raises(value):
    check_parquet(value)


@CI_SETTINGS
@given(text_files())
# a .zst text file was quarantined whole: zstandard's reader has no readline
@example(("wiki.txt.zst", zstandard.ZstdCompressor().compress(b" = A =\nalpha\n = B = \nbeta\n"), True))
def test_text_reader_never_raises(value):
    check_text(value)
