"""WARC reader (`.warc`, `.warc.gz`) built on warcio.

Keeps `response` records over HTTP(S) whose Content-Type is HTML and whose status is 200;
every other record is counted by kind (`warcinfo`, `request`, `metadata`, `resource`,
`revisit`, `dns`, `non_html`, `http_status`, and by scheme a target URI that is not HTTP:
`file`, `ftp`, ..., `no_uri`, `invalid_uri` for one with no scheme such as `../x`; a URI is
never used as a path). The HTTP body is de-chunked and decoded (gzip, deflate, brotli) by
warcio. A corrupt record header or a damaged gzip member is quarantined with its byte offset
and reading resumes at the next record (the next gzip member or `WARC/` line), never before a
record already read; so is a record of an uncompressed WARC whose Content-Length is missing or
runs past the end of the file, which would otherwise swallow the records after it. A truncated
file keeps every record before the cut.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

import brotli
from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import BufferedReader
from warcio.exceptions import ArchiveLoadFailed

from pipeline import storage
from pipeline.readers import InputFile, Quarantined, ReadItem, Rejected, Skipped, base_document, describe

HTML_TYPES = ("text/html", "application/xhtml+xml")
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGIC = b"WARC/1."
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}")


class _BrotliDecompressor:
    """warcio expects brotlipy's decompressor API; the `brotli` package names it `process`.
    Without this, every `Content-Encoding: br` body fails to decode (warcio 1.7-1.8)."""

    unused_data = None

    def __init__(self):
        self._d = brotli.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        return self._d.process(data)

    def flush(self) -> bytes:
        return b""


BufferedReader.DECOMPRESSORS["br"] = _BrotliDecompressor


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    magic = _GZIP_MAGIC if file.path.endswith(".gz") else _WARC_MAGIC
    with storage.open(file.path, "rb", **(spec.storage_options or {})) as stream:
        offset = 0
        while offset is not None:
            offset = yield from _read_from(stream, offset, magic, file, spec, options)


# What warcio raises on a malformed record while it parses one (only `next()` on its iterator
# is guarded: an error in this module's own code is not taken for a corrupt record). Beyond its
# own ArchiveLoadFailed and the decompressors' errors, it is not hardened against odd headers:
# a response without WARC-Target-URI raises AttributeError (found by tests/pipeline/test_fuzz_readers.py).
_PARSE_ERRORS = (ArchiveLoadFailed, zlib.error, brotli.error, EOFError, OSError, ValueError, AttributeError,
                 TypeError, IndexError, KeyError)


def _read_from(stream, start: int, magic: bytes, file, spec, options) -> Iterator[ReadItem]:
    """Read records from byte `start`; return where to resync after a bad record, or None."""
    stream.seek(start)
    # `iterator.offset` is the absolute offset of the record being read; warcio's
    # get_record_offset() would consume the record body, so it is not used here.
    iterator = ArchiveIterator(stream, check_digests=False)
    records = iter(iterator)
    last = start
    while True:
        try:
            record = next(records, None)
        except _PARSE_ERRORS as error:
            # warcio's offset can go negative or back (when it takes non-WARC bytes for an ARC
            # record): resync after the last record yielded, never before it (that record would
            # be read twice, found by tests/pipeline/test_fuzz_readers.py)
            return (yield from _quarantine(stream, max(iterator.offset, last), magic, file,
                                           f"{type(error).__name__}: {_one_line(str(error))}"))
        if record is None:
            break
        last = iterator.offset
        if magic == _WARC_MAGIC and (overrun := _length_overrun(record, last, file.size)):
            return (yield from _quarantine(stream, last, magic, file, overrun))
        yield _convert(record, last, file, spec, options)
    # warcio ends quietly at a record cut short: either it stops before the partial record
    # (bytes are left over) or it yields what it got (the last record is not whole).
    if file.size - iterator.offset > 4 or not _whole_record_at(stream, last, magic == _GZIP_MAGIC):
        yield Quarantined("read.truncated_file", f"{file.relpath}: the record after byte {last} is cut short")
    return None


def _whole_record_at(stream, offset: int, gzipped: bool) -> bool:
    """A gzip member that reaches its end marker, or plain records ending in CRLF CRLF."""
    stream.seek(offset)
    if not gzipped:
        stream.seek(0, 2)
        stream.seek(max(offset, stream.tell() - 4))
        return stream.read(4) in (b"\r\n\r\n", b"")
    inflate = zlib.decompressobj(31)
    while not inflate.eof and (chunk := stream.read(1 << 20)):
        try:
            inflate.decompress(chunk)
        except zlib.error:
            return False
    return inflate.eof


def _length_overrun(record, offset: int, file_size: int) -> str | None:
    """Why an uncompressed record's Content-Length cannot be right, or None. Nothing but
    that length frames such a record: too large, it would swallow the records after it."""
    length = (record.rec_headers.get_header("Content-Length") or "").strip()
    if not length.isdigit():
        return f"Content-Length {length!r} is not a number" if length else "no Content-Length"
    if offset + len(record.rec_headers.to_bytes()) + int(length) > file_size:
        return f"Content-Length {length} runs past the end of the file"
    return None


def _one_line(message: str, limit: int = 160) -> str:
    """warcio's message on one printable line: it spans lines and quotes the bad bytes."""
    text = " ".join(message.split()).encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."


def _quarantine(stream, bad_at: int, magic: bytes, file, why: str) -> Iterator[ReadItem]:
    """Report a bad record and return the offset of the next record to try, or None."""
    resume = _find_next(stream, bad_at + 1, magic)
    what = "read.truncated_file" if resume is None else "read.corrupt_record"
    end = f"resumed at byte {resume}" if resume is not None else "rest of file unreadable"
    yield Quarantined(what, f"{file.relpath} at byte {bad_at}: {why}; {end}")
    return resume


def _find_next(stream, position: int, magic: bytes, block: int = 1 << 20) -> int | None:
    """Byte offset of the next `magic` at or after `position`, or None at end of file."""
    stream.seek(position)
    carry = b""
    while chunk := stream.read(block):
        buf = carry + chunk
        found = buf.find(magic)
        if found >= 0:
            return position - len(carry) + found
        carry = buf[-len(magic):]
        position += len(chunk)
    return None


def _scheme_kind(uri: str) -> str:
    """The skipped-record kind of a non-HTTP target URI: its scheme (`dns`, `file`), never
    free text from the URI (`../etc/passwd` would become a stats key)."""
    if not uri:
        return "no_uri"
    scheme = uri.split(":", 1)[0].lower()
    return scheme if ":" in uri and _SCHEME.fullmatch(scheme) else "invalid_uri"


def _convert(record, offset: int, file: InputFile, spec, options) -> ReadItem:
    if record.rec_type != "response":
        return Skipped(record.rec_type if _SCHEME.fullmatch(record.rec_type or "") else "malformed")
    uri = (record.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
    if not uri.lower().startswith(("http:", "https:")) or record.http_headers is None:
        return Skipped(_scheme_kind(uri))
    content_type = record.http_headers.get_header("Content-Type") or ""
    if content_type.split(";")[0].strip().lower() not in HTML_TYPES:
        return Skipped("non_html")
    status = record.http_headers.get_statuscode()
    if status != "200":
        return Skipped("http_status")
    metadata = {
        "warc_file": file.relpath,
        "warc_offset": offset,
        "warc_record_id": record.rec_headers.get_header("WARC-Record-ID"),
        "warc_date": record.rec_headers.get_header("WARC-Date"),
        "content_type": content_type,
    }
    doc = base_document(spec, f"{spec.source}/{file.relpath}@{offset}", url=uri, metadata=metadata)
    try:
        body = record.content_stream().read(options.max_record_bytes + 1)
    except (zlib.error, OSError, ValueError, brotli.error) as error:
        metadata["error"] = describe(error)
        return Rejected(doc, "read.undecodable_body")
    if len(body) > options.max_record_bytes:
        doc.metadata["truncated_at"] = options.max_record_bytes
        return Rejected(doc.replace(extras={"raw": body[: options.max_record_bytes]}), "read.record_too_large")
    return doc.replace(extras={"raw": body})
