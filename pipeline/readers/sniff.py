"""What a file's first bytes say it is, so that a reader given the wrong `format` quarantines
the file as `read.wrong_format` instead of misreading it: warcio takes a JSON line for an ARC
record and crashes seeking to a negative offset, pyarrow says only "Parquet magic bytes not
found", and the JSON-lines reader rejects every line of a Parquet file as invalid UTF-8.

Only clear cases are refused: a file that positively looks like another format, or compressed
data under a name that does not say so (the text readers pick the decompressor by the name).
A file whose start is damaged but still holds a WARC record further on goes to the WARC reader,
which quarantines the bad record and resumes.

    problem = wrong_format(file, spec)   # a Quarantined, or None
"""

from __future__ import annotations

import bz2
import lzma
import zlib

from fsspec.utils import infer_compression

from pipeline import storage
from pipeline.readers import InputFile, Quarantined

HEAD_BYTES = 1 << 16
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
WHAT = {"parquet": "a Parquet file", "warc": "a WARC file", "jsonl": "JSON lines", "html": "HTML",
        "binary": "binary data", "text": "plain text"}
# Per format, what else a file may look like and still be read: anything textual is text; an
# HTML page may be in UTF-16 (NUL bytes) or start with anything; WARC is checked on its own.
REFUSED = {
    "parquet": {"warc", "jsonl", "html", "binary", "text"},
    "jsonl": {"parquet", "warc", "html", "binary"},
    "html": {"parquet", "warc", "jsonl"},
    "text": {"parquet", "warc"},
}


def _decompress(data: bytes, compression: str) -> bytes:
    """The start of the decompressed stream (b"" where the head cannot be decompressed)."""
    try:
        if compression == "gzip":
            return _gunzip(data)
        if compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(data)[:HEAD_BYTES]
        if compression == "bz2":
            return bz2.BZ2Decompressor().decompress(data, HEAD_BYTES)
        return lzma.LZMADecompressor().decompress(data, HEAD_BYTES)
    except Exception:  # each decoder has its own errors; a damaged head is the reader's to report
        return b""


def _gunzip(data: bytes) -> bytes:
    """Up to HEAD_BYTES of gzip `data`, across members (a .warc.gz has one per record)."""
    out = b""
    while data and len(out) < HEAD_BYTES:
        member = zlib.decompressobj(31)
        out += member.decompress(data, HEAD_BYTES - len(out))
        if not member.eof:
            break
        data = member.unused_data
    return out


def kind_of(data: bytes) -> str:
    """What (decompressed) bytes look like: parquet, warc, jsonl, html, binary or text."""
    if data.startswith(b"PAR1"):
        return "parquet"
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith((b"WARC/", b"filedesc://")):  # warcio reads ARC files too
        return "warc"
    if start.startswith(b"{"):
        return "jsonl"
    if start.startswith(b"<"):
        return "html"
    return "binary" if b"\x00" in data else "text"


def sniff(path: str, storage_options: dict | None = None) -> tuple[str | None, str, bytes]:
    """(compression or None, kind of the content, the content's first bytes) of `path`."""
    with storage.open(path, "rb", **(storage_options or {})) as f:
        raw = f.read(HEAD_BYTES)
    compression = next((name for magic, name in COMPRESSIONS.items() if raw.startswith(magic)), None)
    data = _decompress(raw, compression) if compression else raw
    return compression, (kind_of(data) if data else ""), data


def wrong_format(file: InputFile, spec) -> Quarantined | None:
    """A `read.wrong_format` quarantine when `file` is clearly not of `spec.format`, else None."""
    compression, kind, data = sniff(file.path, spec.storage_options)
    named = infer_compression(file.path)
    if spec.format == "parquet" and compression:
        return _refuse(file, spec, f"{compression}-compressed data (Parquet files are read as they are)")
    if spec.format in ("jsonl", "html", "text") and compression and named != compression:
        return _refuse(file, spec, f"{compression}-compressed data under a name without its extension "
                                   f"(the {spec.format} reader decompresses by the name)")
    if spec.format == "warc":
        # A damaged first record with a whole one further on is the WARC reader's to resync.
        if kind not in ("warc", "") and b"WARC/1." not in data:
            return _refuse(file, spec, WHAT[kind])
        return None
    if kind in REFUSED[spec.format]:
        return _refuse(file, spec, WHAT[kind])
    return None


def _refuse(file: InputFile, spec, what: str) -> Quarantined:
    return Quarantined("read.wrong_format", f"{file.relpath} looks like {what}, not {spec.format}; "
                                            "check the input's format (or its path)")
