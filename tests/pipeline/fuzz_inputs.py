"""Hypothesis strategies for structured-but-damaged input files: WARC records (plain or one gzip
member each) whose headers, lengths, HTTP framing and body encodings may be wrong, JSON-lines
files with odd values and broken lines, Parquet files of odd column types; then byte-level damage
(truncation, flipped, inserted or deleted bytes) on the whole file. Starting from valid structure
lets the fuzzer reach the readers' deep code (resync after a bad record, body decoding, schema
handling) instead of stopping at the first magic-number check."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import zlib

import brotli
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import strategies as st

# -- byte-level damage --------------------------------------------------------------------------

_DAMAGE = st.tuples(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate"]),
                    st.floats(0, 1), st.binary(min_size=1, max_size=8))


def damage(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    """`data` with each edit applied at a relative position."""
    for op, where, payload in edits:
        at = int(where * len(data))
        if op == "truncate":
            data = data[:at]
        elif op == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (payload[0] or 1)]) + data[at + 1:]
        elif op == "insert":
            data = data[:at] + payload + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + len(payload):]
        elif op == "duplicate":
            data = data[:at] + data[at:at + 64] + data[at:]
    return data


def damages(max_edits: int = 3) -> st.SearchStrategy:
    return st.lists(_DAMAGE, max_size=max_edits)


def _text(max_size: int = 60) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


# -- WARC ---------------------------------------------------------------------------------------

URIS = ["http://example.com/a", "https://example.org/b?q=1", "<https://example.net/c>", "dns:example.com",
        "file:///etc/passwd", "../../etc/passwd", "HTTP://EXAMPLE.COM/", "", "mailto:a@b.c", "http://" + "a" * 300]
TYPES = ["response", "response", "response", "request", "warcinfo", "metadata", "resource", "revisit", "", "RESPONSE"]
CONTENT_TYPES = ["text/html", "text/html; charset=utf-8", "application/xhtml+xml", "TEXT/HTML ; charset=latin-1",
                 "image/png", "", "text/html; charset=\"", "text/plain"]
STATUS_LINES = ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.0 404 Not Found", "HTTP/1.1 200", "HTTP/2 200 OK",
                "HTTP/1.1 abc OK", "200 OK", "", "GARBAGE"]
ENCODINGS = ["", "", "gzip", "deflate", "br", "x-gzip", "compress", "gzip, br", "identity"]


def _encode_body(body: bytes, encoding: str, corrupt: bool) -> bytes:
    coded = {"gzip": gzip.compress, "x-gzip": gzip.compress, "deflate": zlib.compress,
             "br": brotli.compress}.get(encoding, lambda b: b)(body)
    return coded[: len(coded) // 2] if corrupt else coded


def _chunked(body: bytes, sizes: list[int], broken: str) -> bytes:
    out, at = b"", 0
    for size in sizes:
        piece = body[at:at + size]
        if not piece:
            break
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        at += size
    out += f"{len(body) - at:x}\r\n".encode() + body[at:] + b"\r\n" if at < len(body) else b""
    if broken == "size":
        out = b"zz\r\n" + out
    elif broken == "short":
        out = out[:-3]
    return out + (b"" if broken == "no_end" else b"0\r\n\r\n")


MAX_RECORD_BYTES = 8192  # the readers' limit under fuzzing: larger records are rejected
# warcio parses HTTP headers only under a lower-case `http:`/`https:` scheme: it skips an
# `HTTP://` record (counted as `skipped.http`), though schemes are case-insensitive (RFC 3986).
HTML_URIS = URIS[:3] + URIS[9:]
HTML_TYPES = CONTENT_TYPES[:4] + CONTENT_TYPES[6:7]
KNOWN_ENCODINGS = ("", "gzip", "deflate", "br", "identity")


@st.composite
def warc_record(draw) -> tuple[bytes, bool | None]:
    """One WARC record's bytes, and whether the reader must make a document of it (None when
    the record's framing or body coding is damaged, so that either outcome is acceptable)."""
    # Half the records are HTML 200 responses that only byte-level damage can spoil, so that
    # the body decoding and the document path are reached, not only the skips.
    clean = draw(st.booleans())
    rec_type = "response" if clean else draw(st.sampled_from(TYPES))
    uri = draw(st.sampled_from(HTML_URIS) if clean else st.sampled_from(URIS) | _text(40))
    content_type = draw(st.sampled_from(HTML_TYPES if clean else CONTENT_TYPES))
    status = "HTTP/1.1 200 OK" if clean else draw(st.sampled_from(STATUS_LINES))
    encoding = draw(st.sampled_from(KNOWN_ENCODINGS if clean else ENCODINGS))
    corrupt = draw(st.booleans()) and draw(st.booleans())
    body = draw(st.binary(max_size=200) | _text(200).map(lambda t: f"<html><p>{t}</p></html>".encode())
                | st.just(b"<p>" + b"x" * MAX_RECORD_BYTES + b"</p>"))
    coded = _encode_body(body, encoding, corrupt)
    size = len(coded) if encoding in ("", "identity") else len(body)  # of the body the reader gets
    chunked = draw(st.sampled_from(["", "ok"] if clean else ["", "ok", "size", "short", "no_end"]))
    if chunked:
        coded = _chunked(coded, draw(st.lists(st.integers(1, 64), max_size=4)), chunked)
    strays = [] if clean else draw(st.lists(_text(30), max_size=2))  # stray header lines
    http = [status, f"Content-Type: {content_type}", *strays]
    http += [f"Content-Encoding: {encoding}"] if encoding else []
    http += ["Transfer-Encoding: chunked"] if chunked else []
    block = "\r\n".join(http).encode("utf-8") + b"\r\n\r\n" + coded
    length = "ok" if clean else draw(st.sampled_from(["ok", "ok", "missing", "short", "long", "text", "negative"]))
    value = {"ok": str(len(block)), "short": str(max(0, len(block) - 7)), "long": str(len(block) + 50),
             "text": "twelve", "negative": "-5"}.get(length)
    headers = ["WARC/1.0", f"WARC-Type: {rec_type}", "WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000000>",
               "WARC-Date: 2026-01-15T12:00:00Z", f"WARC-Target-URI: {uri}",
               "Content-Type: application/http; msgtype=response"]
    headers += [f"Content-Length: {value}"] if value is not None else []
    record = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + block + b"\r\n\r\n"
    certain = (length == "ok" and not strays and uri in URIS and encoding in KNOWN_ENCODINGS
               and chunked in ("", "ok") and not (corrupt and encoding not in ("", "identity")))
    is_doc = (rec_type == "response" and uri in HTML_URIS and content_type in HTML_TYPES
              and status in ("HTTP/1.1 200 OK", "HTTP/1.1 200", "HTTP/2 200 OK") and size <= MAX_RECORD_BYTES)
    return record, (is_doc if certain else None)


@st.composite
def warc_files(draw) -> tuple[str, bytes, int | None]:
    """(file name, bytes, the documents it must yield; None when damage makes that open)."""
    records = draw(st.lists(warc_record(), min_size=1, max_size=4))
    gzipped = draw(st.booleans())
    data = b"".join(gzip.compress(r) if gzipped else r for r, _ in records)
    edits = draw(damages())
    outcomes = [doc for _, doc in records]
    expected = sum(outcomes) if not edits and None not in outcomes else None
    return ("crawl.warc.gz" if gzipped else "crawl.warc"), damage(data, edits), expected


# -- JSON lines and plain text --------------------------------------------------------------------

COMPRESSORS = {"gz": gzip.compress, "zst": zstandard.ZstdCompressor().compress, "bz2": bz2.compress,
               "xz": lzma.compress}


@st.composite
def text_files(draw) -> tuple[str, bytes, bool]:
    """(file name, bytes, whether the file is undamaged): lines of text, some of them ` = Title = `
    headings (the separator the text reader's tests use), maybe compressed, maybe damaged."""
    lines = draw(st.lists(st.sampled_from([" = Title = ", " = = Sub = = ", "", "  "]) | _text(40)
                          | st.binary(max_size=30).map(lambda b: b.decode("latin-1")), max_size=8))
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    compression = draw(st.sampled_from(["", "", *COMPRESSORS]))
    data = COMPRESSORS[compression](data) if compression else data
    edits = draw(damages(2)) if draw(st.booleans()) else []
    return "wiki.txt" + (f".{compression}" if compression else ""), damage(data, edits), not edits


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text()
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_text(8), inner, max_size=3), max_leaves=8)


@st.composite
def json_line(draw) -> bytes:
    """One line: a JSON object (its text a string, or null, a number, a list, missing, nested),
    JSON with lone surrogate escapes or NaN, or arbitrary bytes."""
    kind = draw(st.sampled_from(["object", "object", "object", "escapes", "raw", "scalar", "blank", "number"]))
    if kind == "number":  # CPython's json refuses integers over 4300 digits; floats overflow to inf
        digits = draw(st.sampled_from([4299, 4301, 10_000]))
        return b'{"text": "x", "n": ' + b"7" * digits + draw(st.sampled_from([b"", b".5", b"e999"])) + b"}"
    if kind == "raw":
        return draw(st.binary(max_size=80)).replace(b"\n", b" ")
    if kind == "blank":
        return draw(st.sampled_from([b"", b"  ", b"\r", b"\t"]))
    if kind == "scalar":
        return json.dumps(draw(_JSON)).encode()
    record = draw(st.dictionaries(_text(8), _JSON, max_size=4))
    text = draw(st.sampled_from(["text", "missing", "other"]))
    if text == "text":
        record["text"] = draw(_text())
    elif text == "other":
        record["text"] = draw(_JSON)
    if draw(st.booleans()):
        record["meta"] = {"url": draw(st.sampled_from(URIS))}
    line = json.dumps(record, ensure_ascii=draw(st.booleans()))
    if kind == "escapes":  # a lone surrogate is valid JSON syntax but no Unicode character
        line = line[:-1] + (", " if record else "") + '"s": "' + draw(st.sampled_from(
            ["\\ud800", "\\udfff x", "\\ud83d\\ude00", "\\udc00\\ud800", "\\u0000"])) + '"}'
    return line.encode("utf-8", "surrogatepass")


@st.composite
def jsonl_files(draw) -> tuple[str, bytes, int | None]:
    """(file name, bytes, number of lines when the file is undamaged)."""
    lines = draw(st.lists(json_line(), max_size=6))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = b"".join(line + ending for line in lines)
    compression = draw(st.sampled_from(["", "", *COMPRESSORS]))
    data = COMPRESSORS[compression](data) if compression else data
    edits = draw(damages(2)) if compression or draw(st.booleans()) else []
    expected = len(lines) if not edits else None
    return "part.jsonl" + (f".{compression}" if compression else ""), damage(data, edits), expected


# -- Parquet ------------------------------------------------------------------------------------

_COLUMNS = {
    "string": (pa.string(), _text()),
    "large_string": (pa.large_string(), _text()),
    "int": (pa.int64(), st.integers(-(2 ** 63), 2 ** 63 - 1)),
    "float": (pa.float64(), st.floats(allow_nan=True)),
    "binary": (pa.binary(), st.binary(max_size=20)),
    "bool": (pa.bool_(), st.booleans()),
    "list": (pa.list_(pa.string()), st.lists(_text(10), max_size=3)),
    "struct": (pa.struct([("url", pa.string()), ("n", pa.int32())]),
               st.fixed_dictionaries({"url": _text(20), "n": st.integers(-100, 100)})),
    "timestamp": (pa.timestamp("us"), st.integers(0, 2 ** 50)),
    "decimal": (pa.decimal128(10, 3), st.decimals(-10 ** 6, 10 ** 6, places=3, allow_nan=False)),
    "map": (pa.map_(pa.string(), pa.int64()), st.lists(st.tuples(_text(5), st.integers(0, 9)), max_size=2)),
    "dictionary": (pa.dictionary(pa.int8(), pa.string()), st.sampled_from(["a", "b", "c"])),
    "null": (pa.null(), st.none()),
}


def _column(draw, kind: str, rows: int) -> pa.Array:
    arrow_type, values = _COLUMNS[kind]
    data = [draw(st.none() | values) for _ in range(rows)]
    if kind == "dictionary":
        return pa.array(data, pa.string()).dictionary_encode()
    return pa.array(data, arrow_type)


@st.composite
def parquet_files(draw) -> tuple[str, bytes, int | None]:
    """(file name, bytes, number of rows when the file is undamaged)."""
    rows = draw(st.integers(0, 6))
    names = draw(st.lists(st.sampled_from(["text", "url", "id", "meta", "a.b", "score"]), unique=True, max_size=4))
    kinds = [draw(st.sampled_from(sorted(_COLUMNS))) for _ in names]
    table = pa.table({name: _column(draw, kind, rows) for name, kind in zip(names, kinds)}) if names else \
        pa.table({"empty": pa.array([None] * rows, pa.null())})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=draw(st.integers(1, 4)),
                   compression=draw(st.sampled_from(["none", "snappy", "zstd", "gzip"])))
    edits = draw(damages(2)) if draw(st.booleans()) else []
    return "part.parquet", damage(sink.getvalue(), edits), (rows if not edits else None)
