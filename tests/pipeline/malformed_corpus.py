"""A corpus of malformed inputs, generated at test time (nothing binary is checked in), with
the outcome each kind must have in a run: quarantined or rejected with an exact reason, skipped
by kind, or kept (a good record beside a bad one, an odd but valid file). Big inputs (a 50 MB
page, a 200 MB JSON line, a gzip bomb, 10,000 tiny files) are streamed to disk in chunks.

    kinds = write_corpus(tmp_path / "in")   # one folder per format: warc/ html/ jsonl/ parquet/ tiny/
    for kind in kinds: kind.name, kind.outcome, kind.reason, kind.key, kind.good
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

MB = 1 << 20
BOMB_BYTES = 2 << 30  # the gzip bomb inflates to 2 GiB in one line
HUGE_LINE_BYTES = 200 * MB
BIG_PAGE_BYTES = 50 * MB
TINY_FILES = 10_000
NESTING = 100_000


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of malformed input and what a run must make of it. `key` is the quarantined
    file's path in its input (outcome `quarantined`), the URL or id of the record (`rejected`,
    `kept`) or the skipped-record kind (`skipped`); `good` lists the URLs or ids of good
    records in the same file that must be kept. `stage` is where a rejection happens."""

    name: str
    outcome: str  # quarantined | rejected | skipped | kept
    reason: str
    key: str
    good: tuple[str, ...] = ()
    stage: str = "read"


# -- pages and WARC records --------------------------------------------------------------------

def page(words: str) -> bytes:
    body = "".join(f"<p>{words}: paragraph {i} about rivers, bridges and the towns beside them.</p>"
                   for i in range(8))
    return f"<html><head><title>{words}</title></head><body>{body}</body></html>".encode()


def http(body: bytes, content_type: str = "text/html; charset=utf-8", headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode() + b"\r\n" + headers + b"\r\n" + body


def warc_record(uri: str, payload: bytes, length: str | None = "auto") -> bytes:
    """A `response` record; `length` None leaves Content-Length out, a string overrides it."""
    headers = [b"WARC/1.0", b"WARC-Type: response", b"WARC-Date: 2026-01-15T12:00:00Z",
               b"WARC-Record-ID: <urn:uuid:%08x-0000-4000-8000-000000000000>" % (zlib.crc32(uri.encode())),
               b"WARC-Target-URI: " + uri.encode(), b"Content-Type: application/http; msgtype=response"]
    if length is not None:
        headers.append(b"Content-Length: " + (str(len(payload)) if length == "auto" else length).encode())
    return b"\r\n".join(headers) + b"\r\n\r\n" + payload + b"\r\n\r\n"


def good_record(url: str) -> bytes:
    return warc_record(url, http(page(url)))


def write_warc(path: Path, records: list[bytes]) -> None:
    """Records as they are (`.warc`) or one gzip member each (`.warc.gz`)."""
    gzipped = path.name.endswith(".gz")
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) if gzipped else r for r in records))


def _url(name: str, i: int | str = "bad") -> str:
    return f"https://malformed.example/{name}/{i}"


def _around(name: str, bad: bytes) -> tuple[list[bytes], tuple[str, ...]]:
    """A bad record between two good ones, and the good ones' URLs."""
    good = (_url(name, 1), _url(name, 2))
    return [good_record(good[0]), bad, good_record(good[1])], good


def warc_kinds(root: Path) -> list[Kind]:
    root.mkdir(parents=True)
    kinds = []

    def one(name: str, filename: str, bad: bytes, outcome: str, reason: str, key: str | None = None,
            stage: str = "read") -> None:
        records, good = _around(name, bad)
        write_warc(root / filename, records)
        kinds.append(Kind(name, outcome, reason, key if key is not None else filename, good, stage))

    url = _url("member_cut")
    member = gzip.compress(warc_record(url, http(page("cut member") * 20)), mtime=0)
    records, good = _around("member_cut", b"")
    (root / "member-cut.warc.gz").write_bytes(gzip.compress(records[0], mtime=0) + member[: len(member) // 2]
                                              + gzip.compress(records[2], mtime=0))
    kinds.append(Kind("gzip_member_cut_mid_record", "quarantined", "read.corrupt_record", "member-cut.warc.gz", good))

    records, good = _around("truncated_warc", warc_record(_url("truncated_warc"), http(page("cut") * 20)))
    data = b"".join(gzip.compress(r, mtime=0) for r in records)
    last = gzip.compress(records[2], mtime=0)
    (root / "truncated.warc.gz").write_bytes(data[: len(data) - len(last) // 2])
    kinds.append(Kind("truncated_gzip_warc", "quarantined", "read.truncated_file", "truncated.warc.gz", good[:1]))

    header = warc_record(_url("corrupt_header"), http(page("corrupt header"))).replace(b"WARC/1.0", b"XARC/9.9", 1)
    one("corrupt_warc_header", "corrupt-header.warc.gz", header, "quarantined", "read.corrupt_record")
    payload = http(page("long length"))
    one("content_length_too_long", "length-long.warc", warc_record(_url("length_long"), payload, "99999"),
        "quarantined", "read.corrupt_record")
    one("content_length_too_short", "length-short.warc", warc_record(_url("length_short"), payload, "40"),
        "quarantined", "read.corrupt_record")
    one("content_length_missing", "length-missing.warc", warc_record(_url("length_missing"), payload, None),
        "quarantined", "read.corrupt_record")
    one("content_length_not_a_number", "length-nan.warc", warc_record(_url("length_nan"), payload, "12ab"),
        "quarantined", "read.corrupt_record")
    # A chunk-size line that is not hex: warcio keeps the body as it was stored; nothing is lost.
    chunked = http(b"zz\r\n" + page("broken chunks") + b"\r\n0\r\n\r\n", headers=b"Transfer-Encoding: chunked\r\n")
    one("broken_chunked_encoding", "chunked.warc.gz", warc_record(_url("chunked"), chunked), "kept", "",
        _url("chunked"), stage="extract")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    one("binary_payload_labelled_html", "binary.warc.gz", warc_record(_url("binary"), http(png)),
        "rejected", "extract.binary_content", _url("binary"), stage="extract")
    nuls = page("nul bytes").replace(b"paragraph", b"para\x00\x00\x00\x00graph")
    one("nul_bytes_in_page", "nul.warc.gz", warc_record(_url("nul"), http(nuls)),
        "rejected", "extract.binary_content", _url("nul"), stage="extract")
    one("dot_dot_target_uri", "dotdot.warc.gz", warc_record("../../../etc/passwd", http(page("dotdot"))),
        "skipped", "invalid_uri", "invalid_uri")
    one("file_target_uri", "file-uri.warc", warc_record("file:///etc/passwd", http(page("file uri"))),
        "skipped", "file", "file")
    long_url = "https://malformed.example/long/" + "a" * 100_000
    one("url_of_100_kb", "long-url.warc.gz", warc_record(long_url, http(page("long url"))), "kept", "", long_url,
        stage="extract")
    cp1252 = page("caf\u00e9 \u2019quoted\u2019 na\u00efve r\u00e9sum\u00e9").decode().encode("cp1252")
    one("wrong_declared_charset", "charset.warc.gz", warc_record(_url("charset"), http(cp1252)), "kept", "",
        _url("charset"), stage="extract")
    stray = page("les rivi\u00e8res et les ponts, d\u00e9j\u00e0 tr\u00e8s beaux")
    stray = stray[:200] + b"\xff\xfe" + stray[200:]
    one("invalid_utf8_in_page", "invalid-utf8.warc.gz", warc_record(_url("invalid_utf8"), http(stray)), "kept", "",
        _url("invalid_utf8"), stage="extract")
    return kinds


# -- HTML files ----------------------------------------------------------------------------------

def write_big_page(path: Path, n_bytes: int) -> None:
    para = page("big page")
    with open(path, "wb") as f:
        for _ in range(n_bytes // len(para) + 1):
            f.write(para)


def html_kinds(root: Path) -> list[Kind]:
    root.mkdir(parents=True)
    text = page("utf sixteen").decode()
    (root / "utf16-bom.html").write_bytes(text.encode("utf-16"))
    (root / "utf16-no-bom.html").write_bytes(text.encode("utf-16-le"))
    write_big_page(root / "big.html", BIG_PAGE_BYTES)
    deep = b"<html><body>" + b"<div>" * NESTING + b"<p>deep</p>" + b"</div>" * NESTING + b"</body></html>"
    (root / "deep.html").write_bytes(deep)
    (root / "zero.html").write_bytes(b"")
    (root / "empty.html.gz").write_bytes(gzip.compress(b"", mtime=0))
    (root / "folder.html").mkdir()
    os.symlink(root / "loop-b.html", root / "loop-a.html")
    os.symlink(root / "loop-a.html", root / "loop-b.html")
    odd = ["with space.html", "\u00fcn\u00efc\u00f8d\u00e9-\u6587\u5b57.html", "new\nline.html"]
    for name in odd:
        (root / name).write_bytes(page(f"odd name {name!r}"))
    return [
        Kind("utf16_with_bom", "kept", "", "html/utf16-bom.html", stage="extract"),
        Kind("utf16_without_bom", "kept", "", "html/utf16-no-bom.html", stage="extract"),
        Kind("page_of_50_mb", "rejected", "extract.page_too_large", "html/big.html", stage="extract"),
        Kind("html_nested_100000_deep", "rejected", "extract.no_main_text", "html/deep.html", stage="extract"),
        Kind("zero_byte_html", "quarantined", "read.empty_file", "zero.html"),
        Kind("empty_gzip_html", "quarantined", "read.empty_file", "empty.html.gz"),
        Kind("folder_named_like_a_data_file", "quarantined", "read.not_a_file", "folder.html"),
        Kind("symlink_loop", "quarantined", "read.unreadable_file", "loop-a.html"),
        *[Kind(f"odd_file_name_{i}", "kept", "", f"html/{name}", stage="extract") for i, name in enumerate(odd)],
    ]


# -- JSON lines ----------------------------------------------------------------------------------

def jsonl_line(text: str) -> bytes:
    return b'{"text": "' + text.encode() + b'", "url": "https://malformed.example/jsonl"}\n'


def write_huge_line(path: Path, n_bytes: int) -> None:
    """A good line, one JSON line of `n_bytes` of text, a good line; written 1 MB at a time."""
    chunk = b"a" * MB
    with open(path, "wb") as f:
        f.write(jsonl_line("before the huge line") + b'{"text": "')
        for _ in range(n_bytes // MB):
            f.write(chunk)
        f.write(b'"}\n' + jsonl_line("after the huge line"))


def write_gzip_bomb(path: Path, n_bytes: int) -> None:
    """A `.jsonl.gz` of a few MB whose second line inflates to `n_bytes` of zeros: one 64 MB
    member of zeros, compressed once, repeated."""
    block = gzip.compress(b"\0" * (64 * MB), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(jsonl_line("before the bomb") + b'{"text": "', mtime=0))
        for _ in range(n_bytes // (64 * MB)):
            f.write(block)
        f.write(gzip.compress(b'"}\n' + jsonl_line("after the bomb"), mtime=0))


def jsonl_kinds(root: Path) -> list[Kind]:
    root.mkdir(parents=True)
    lines = {
        "good_first": jsonl_line("a good line"),
        "broken_json": b'{"text": "unterminated\n',
        "invalid_utf8": b'{"text": "caf\xe9"}\n',
        "nul_byte": b'{"text": "a\x00b"}\n',
        "text_null": b'{"text": null}\n',
        "text_number": b'{"text": 42}\n',
        "text_list": b'{"text": ["a", "b"]}\n',
        "text_missing": b'{"title": "no text"}\n',
        "not_an_object": b'["text", "a list"]\n',
        "good_last": jsonl_line("another good line"),
    }
    (root / "broken.jsonl").write_bytes(b"".join(lines.values()))
    line_no = {name: i for i, name in enumerate(lines, start=1)}
    good = ("jsonl/broken.jsonl:1", "jsonl/broken.jsonl:10")
    reasons = {"broken_json": "read.invalid_json", "invalid_utf8": "read.invalid_utf8",
               "nul_byte": "read.invalid_json", "text_null": "read.missing_text_field",
               "text_number": "read.text_not_a_string", "text_list": "read.text_not_a_string",
               "text_missing": "read.missing_text_field", "not_an_object": "read.not_an_object"}
    kinds = [Kind(f"jsonl_{name}", "rejected", reason, f"jsonl/broken.jsonl:{line_no[name]}", good)
             for name, reason in reasons.items()]

    payload = gzip.compress(b"".join(jsonl_line(f"line {i}") for i in range(3000)), mtime=0)
    (root / "cut.jsonl.gz").write_bytes(payload[: len(payload) // 2])
    kinds.append(Kind("truncated_gzip", "quarantined", "read.truncated_file", "cut.jsonl.gz",
                      ("jsonl/cut.jsonl.gz:1",)))
    (root / "zero.jsonl.gz").write_bytes(b"")
    kinds.append(Kind("zero_byte_gz", "quarantined", "read.empty_file", "zero.jsonl.gz"))
    (root / "empty.jsonl.gz").write_bytes(gzip.compress(b"", mtime=0))
    kinds.append(Kind("empty_gz", "quarantined", "read.empty_file", "empty.jsonl.gz"))
    (root / "corrupt.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 8)
    kinds.append(Kind("corrupt_zst", "quarantined", "read.corrupt_file", "corrupt.jsonl.zst"))
    # Text that does not compress to nothing, so the first blocks hold whole lines.
    varied = b"".join(jsonl_line(f"line {i} " + " ".join(str(i * j % 977) for j in range(40))) for i in range(20000))
    zst = zstandard.ZstdCompressor().compress(varied)
    (root / "cut.jsonl.zst").write_bytes(zst[: len(zst) // 2])
    kinds.append(Kind("truncated_zst", "quarantined", "read.truncated_file", "cut.jsonl.zst",
                      ("jsonl/cut.jsonl.zst:1",)))
    frames = [zstandard.ZstdCompressor().compress(jsonl_line(f"frame {i}")) for i in range(2)]
    (root / "frames.jsonl.zst").write_bytes(b"".join(frames))
    kinds.append(Kind("zst_of_two_frames", "kept", "", "jsonl/frames.jsonl.zst:2",
                      ("jsonl/frames.jsonl.zst:1",)))
    write_huge_line(root / "huge-line.jsonl", HUGE_LINE_BYTES)
    kinds.append(Kind("jsonl_line_of_200_mb", "rejected", "read.record_too_large", "jsonl/huge-line.jsonl:2",
                      ("jsonl/huge-line.jsonl:1", "jsonl/huge-line.jsonl:3")))
    write_gzip_bomb(root / "bomb.jsonl.gz", BOMB_BYTES)
    kinds.append(Kind("gzip_bomb", "rejected", "read.record_too_large", "jsonl/bomb.jsonl.gz:2",
                      ("jsonl/bomb.jsonl.gz:1", "jsonl/bomb.jsonl.gz:3")))
    (root / "dir.jsonl").mkdir()
    kinds.append(Kind("folder_named_like_a_jsonl_file", "quarantined", "read.not_a_file", "dir.jsonl"))
    os.symlink(root / "nowhere.jsonl", root / "dangling.jsonl")
    kinds.append(Kind("dangling_symlink", "quarantined", "read.unreadable_file", "dangling.jsonl"))
    return kinds


# -- Parquet -------------------------------------------------------------------------------------

def parquet_kinds(root: Path) -> list[Kind]:
    root.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a good row", "another good row"]}), root / "good.parquet")
    pq.write_table(pa.table({"body": ["text under another name"]}), root / "no-text.parquet")
    pq.write_table(pa.table({"text": pa.array([7], pa.int64())}), root / "int-text.parquet")
    data = (root / "good.parquet").read_bytes()
    (root / "truncated.parquet").write_bytes(data[: len(data) // 2])
    return [
        Kind("parquet_without_text_column", "rejected", "read.missing_text_field", "parquet/no-text.parquet:0"),
        Kind("parquet_text_of_wrong_type", "rejected", "read.text_not_a_string", "parquet/int-text.parquet:0"),
        Kind("truncated_parquet", "quarantined", "read.unreadable_file", "truncated.parquet"),
        Kind("parquet_good_rows", "kept", "", "parquet/good.parquet:1", ("parquet/good.parquet:0",), stage="extract"),
    ]


# -- many tiny files -----------------------------------------------------------------------------

def tiny_kinds(root: Path, n: int = TINY_FILES) -> list[Kind]:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"t{i:05d}.html").write_bytes(b"<p>tiny %d</p>" % i)
    return [Kind(f"tiny_files_{n}", "kept", "", f"tiny/t{n - 1:05d}.html", ("tiny/t00000.html",), stage="read")]


def write_corpus(root: Path) -> list[Kind]:
    """Every kind's files under `root/<format>/`; the kinds with their expected outcomes."""
    return [*warc_kinds(root / "warc"), *html_kinds(root / "html"), *jsonl_kinds(root / "jsonl"),
            *parquet_kinds(root / "parquet"), *tiny_kinds(root / "tiny")]
