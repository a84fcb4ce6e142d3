"""Readers: real WARC record accounting, every input format, and broken inputs."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from warcio.archiveiterator import ArchiveIterator

from pipeline.config import InputSpec, ReadOptions
from pipeline.demo.warcs import Page, write_warc
from pipeline.readers import Quarantined, Rejected, Skipped, list_files, list_tasks, parquet, read_file
from pipeline.record import Document
from tests.conftest import shared_path

OPTIONS = ReadOptions()


def read_all(path: str, fmt: str, **spec_fields) -> list:
    spec = InputSpec(path=path, format=fmt, source="src", **spec_fields)
    return [item for f in list_files(spec) for item in read_file(f, spec, OPTIONS)]


def kinds(items: list) -> Counter:
    out: Counter = Counter()
    for item in items:
        if isinstance(item, Document):
            out["doc"] += 1
        elif isinstance(item, Skipped):
            out[f"skipped.{item.kind}"] += 1
        elif isinstance(item, Rejected):
            out[item.reason] += 1
        else:
            out[item.reason] += 1
    return out


def test_real_warcs_match_their_manifest():
    folder = shared_path("warc_real_crawls")
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest:
        got = kinds(read_all(str(folder / entry["file"]), "warc"))
        types = entry["record_types"]
        assert got["doc"] == entry["response_html_status200"], entry["file"]
        assert got["skipped.http_status"] == entry["response_html"] - entry["response_html_status200"]
        assert got["skipped.non_html"] + got["skipped.dns"] == types["response"] - entry["response_html"]
        for kind in ("request", "metadata", "warcinfo", "resource", "revisit"):
            assert got[f"skipped.{kind}"] == types.get(kind, 0), (entry["file"], kind)


def test_warc_documents_carry_origin_and_decoded_body():
    folder = shared_path("warc_real_crawls")
    docs = {}
    for name in ("none", "gzip", "brotli"):
        (doc,) = [d for d in read_all(str(folder / f"transfer_compression_{name}.warc.gz"), "warc")
                  if isinstance(d, Document)]
        docs[name] = doc
    assert docs["gzip"].extras["raw"] == docs["none"].extras["raw"] == docs["brotli"].extras["raw"]
    assert docs["none"].id.startswith("src/transfer_compression_none.warc.gz@")
    assert docs["none"].metadata["warc_offset"] == int(docs["none"].id.rsplit("@", 1)[1])
    wget = [d for d in read_all(str(folder / "dolma-sample-0000.warc.gz"), "warc") if isinstance(d, Document)]
    assert all(d.url.startswith("http") and not d.url.startswith("<") for d in wget)  # <url> brackets stripped


def _members(path: Path) -> list[tuple[int, int]]:
    with open(path, "rb") as f:
        it = ArchiveIterator(f)
        out = []
        for record in it:
            record.content_stream().read()
            out.append((it.get_record_offset(), it.get_record_length()))
    return out


def _crawl(tmp_path: Path, n: int = 4) -> Path:
    pages = [Page(f"https://site.example/p{i}", f"<html><body><p>page {i}</p></body></html>".encode())
             for i in range(n)]
    return write_warc(tmp_path / "crawl.warc.gz", pages)


def test_corrupt_record_header_is_quarantined_and_reading_resumes(tmp_path):
    path = _crawl(tmp_path)
    data = bytearray(path.read_bytes())
    offset, length = _members(path)[5]  # the response record of page 1
    member = gzip.decompress(bytes(data[offset:offset + length]))
    broken = gzip.compress(member.replace(b"WARC/1.0", b"XARC/9.9", 1), mtime=0)
    path.write_bytes(bytes(data[:offset]) + broken + bytes(data[offset + length:]))
    items = read_all(str(path), "warc")
    got = kinds(items)
    assert got["doc"] == 3 and got["read.corrupt_record"] == 1
    (problem,) = [i for i in items if isinstance(i, Quarantined)]
    assert f"at byte {offset}" in problem.detail


def test_truncated_warc_keeps_records_before_the_cut(tmp_path):
    path = _crawl(tmp_path, n=6)
    data = path.read_bytes()
    cut = _members(path)[10][0] + 40  # inside the 4th page's response record
    path.write_bytes(data[:cut])
    got = kinds(read_all(str(path), "warc"))
    assert got["doc"] == 3
    assert got["read.truncated_file"] == 1


def test_empty_file_is_quarantined(tmp_path):
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    assert kinds(read_all(str(tmp_path / "empty.warc.gz"), "warc")) == Counter({"read.empty_file": 1})


def test_jsonl_broken_lines_are_rejected_with_reasons(tmp_path):
    lines = [b'{"text": "good one", "url": "https://a.example/1", "lang": "en"}', b'{"text": broken',
             b"", b'["not", "an", "object"]', b'{"title": "no text"}', b'{"text": "caf\xe9"}',
             b'{"text": "good two"}']
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    items = read_all(str(tmp_path / "a.jsonl"), "jsonl")
    got = kinds(items)
    assert got == Counter({"doc": 2, "read.invalid_json": 1, "skipped.blank_line": 1, "read.not_an_object": 1,
                           "read.missing_text_field": 1, "read.invalid_utf8": 1})
    first = items[0]
    assert (first.id, first.text, first.url, first.metadata) == ("src/a.jsonl:1", "good one", "https://a.example/1",
                                                                 {"url": "https://a.example/1", "lang": "en"})
    broken = next(i for i in items if isinstance(i, Rejected) and i.reason == "read.invalid_json")
    assert broken.doc.text == '{"text": broken' and broken.doc.id == "src/a.jsonl:2"


def test_truncated_gzip_jsonl_keeps_lines_read(tmp_path):
    payload = gzip.compress(b"".join(b'{"text": "line %d"}\n' % i for i in range(2000)))
    (tmp_path / "cut.jsonl.gz").write_bytes(payload[: len(payload) // 2])
    got = kinds(read_all(str(tmp_path / "cut.jsonl.gz"), "jsonl"))
    assert got["read.truncated_file"] == 1 and 0 < got["doc"] < 2000


@pytest.mark.parametrize("fmt, name", [("jsonl", "z.jsonl.zst"), ("text", "z.txt.zst")])
def test_zstd_compressed_lines_are_read(tmp_path, fmt, name):
    # zstandard's reader (fsspec's .zst codec on Python < 3.14) has no readline: every line
    # reader quarantined .zst files whole, until storage.open_lines buffered it.
    data = b'{"text": "one"}\n{"text": "two"}\n' if fmt == "jsonl" else b"one\ntwo\n"
    (tmp_path / name).write_bytes(zstandard.ZstdCompressor().compress(data))
    docs = read_all(str(tmp_path / name), fmt)
    assert [(type(d), d.text) for d in docs] == ([(Document, "one"), (Document, "two")] if fmt == "jsonl"
                                                 else [(Document, "one\ntwo")])


def test_nested_text_and_url_fields(tmp_path):
    (tmp_path / "n.jsonl").write_text(json.dumps({"body": "x y z", "metadata": {"url": "https://u.example"}}) + "\n")
    (doc,) = read_all(str(tmp_path / "n.jsonl"), "jsonl", text_field="body", url_field="metadata.url")
    assert doc.text == "x y z" and doc.url == "https://u.example"


def test_parquet_reader(tmp_path):
    table = pa.table({"text": ["a b", None, "c"], "score": [1.0, 2.0, 3.0]})
    pq.write_table(table, tmp_path / "d.parquet")
    items = read_all(str(tmp_path / "d.parquet"), "parquet")
    assert kinds(items) == Counter({"doc": 2, "read.missing_text_field": 1})
    assert items[2].id == "src/d.parquet:2" and items[2].metadata == {"score": 3.0}


def test_html_files_keep_bytes_and_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.html").write_bytes(b"<html><body>\xe9t\xe9</body></html>")
    (tmp_path / "sub" / "q.html.gz").write_bytes(gzip.compress(b"<html>x</html>"))
    items = read_all(str(tmp_path / "*" / "*.htm*"), "html")
    assert [d.id for d in items] == ["src/sub/p.html", "src/sub/q.html.gz"]
    assert items[0].extras["raw"] == b"<html><body>\xe9t\xe9</body></html>"
    assert items[1].metadata == {"path": "sub/q.html.gz"}


def test_text_reader_splits_on_separator(tmp_path):
    (tmp_path / "w.txt").write_text(" = A = \n alpha text \n = = Sub = = \n more \n = B = \n beta \n")
    docs = read_all(str(tmp_path / "w.txt"), "text", separator=r"^ = [^=].* = $")
    assert [(d.id, d.text.splitlines()[0].strip()) for d in docs] == [("src/w.txt:1", "= A ="),
                                                                      ("src/w.txt:5", "= B =")]


def test_tasks_group_html_files_and_name_missing_inputs(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.html").write_text("<html></html>")
    spec = InputSpec(path=str(tmp_path / "*.html"), format="html", source="s")
    tasks = list_tasks([spec], ReadOptions(files_per_task=2))
    assert [len(t.files) for t in tasks] == [2, 2, 1]
    with pytest.raises(ValueError, match=r"inputs\[0\]\.path: no files match"):
        list_tasks([InputSpec(path=str(tmp_path / "*.warc"), format="warc", source="s")], ReadOptions())


def test_oversized_record_is_rejected_not_loaded(tmp_path):
    path = write_warc(tmp_path / "big.warc.gz", [Page("https://b.example/", b"<html>" + b"x" * 5000 + b"</html>")])
    spec = InputSpec(path=str(path), format="warc", source="s")
    (item,) = [i for f in list_files(spec) for i in read_file(f, spec, ReadOptions(max_record_bytes=1000))
               if not isinstance(i, Skipped)]
    assert isinstance(item, Rejected) and item.reason == "read.record_too_large"
    assert len(item.doc.extras["raw"]) == 1000


def test_real_warcs_read_without_quarantine():
    folder = shared_path("warc_real_crawls")
    for path in sorted(folder.glob("*.warc.gz")):
        assert not [i for i in read_all(str(path), "warc") if isinstance(i, Quarantined)], path.name


def test_zst_jsonl_is_read_line_by_line_across_frames(tmp_path):
    frames = [zstandard.ZstdCompressor().compress(b'{"text": "frame %d"}\n' % i) for i in range(2)]
    (tmp_path / "f.jsonl.zst").write_bytes(b"".join(frames))
    assert [d.text for d in read_all(str(tmp_path / "f.jsonl.zst"), "jsonl")] == ["frame 0", "frame 1"]
    (tmp_path / "bad.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 4)
    assert kinds(read_all(str(tmp_path / "bad.jsonl.zst"), "jsonl")) == Counter({"read.corrupt_file": 1})
    lines = b"".join(b'{"text": "line %d %d"}\n' % (i, i * 7919 % 10007) for i in range(50000))
    whole = zstandard.ZstdCompressor().compress(lines)
    (tmp_path / "cut.jsonl.zst").write_bytes(whole[: len(whole) // 2])
    got = kinds(read_all(str(tmp_path / "cut.jsonl.zst"), "jsonl"))
    assert got["read.truncated_file"] == 1 and 0 < got["doc"] < 50000


def test_an_over_long_line_is_rejected_with_its_first_bytes_and_reading_goes_on(tmp_path):
    (tmp_path / "l.jsonl").write_bytes(b'{"text": "' + b"a" * 5000 + b'"}\n{"text": "after"}\n')
    spec = InputSpec(path=str(tmp_path / "l.jsonl"), format="jsonl", source="s")
    items = [i for f in list_files(spec) for i in read_file(f, spec, ReadOptions(max_record_bytes=1000))]
    assert kinds(items) == Counter({"read.record_too_large": 1, "doc": 1})
    assert len(items[0].doc.text) == 1000 and items[1].text == "after"


def test_a_text_document_over_the_record_size_is_rejected(tmp_path):
    (tmp_path / "t.txt").write_text("short line\n" + "b" * 3000 + "\n")
    spec = InputSpec(path=str(tmp_path / "t.txt"), format="text", source="s")
    (item,) = [i for f in list_files(spec) for i in read_file(f, spec, ReadOptions(max_record_bytes=1000))]
    assert isinstance(item, Rejected) and item.reason == "read.record_too_large"
    assert len(item.doc.text) <= 1000 and item.doc.metadata["truncated_at"] == 1000


def test_a_parquet_row_over_the_record_size_is_rejected_and_reading_goes_on(tmp_path):
    pq.write_table(pa.table({"text": ["é" * 600, "after"], "n": [1, 2]}), tmp_path / "p.parquet")  # 1,200 bytes
    spec = InputSpec(path=str(tmp_path / "p.parquet"), format="parquet", source="s")
    items = [i for f in list_files(spec) for i in read_file(f, spec, ReadOptions(max_record_bytes=1001))]
    assert kinds(items) == Counter({"read.record_too_large": 1, "doc": 1})
    assert items[0].doc.text == "é" * 500 and items[0].doc.metadata == {"n": 1, "truncated_at": 1001}
    assert items[1].text == "after"


def test_parquet_batches_shrink_for_wide_rows(tmp_path, monkeypatch):
    wide = [f"{i:05d}" * 2_000 for i in range(50)]  # distinct: no dictionary encoding shrinks them
    pq.write_table(pa.table({"text": wide}), tmp_path / "wide.parquet", row_group_size=10)
    pq.write_table(pa.table({"text": ["short"] * 5000}), tmp_path / "narrow.parquet")
    monkeypatch.setattr(parquet, "BATCH_BYTES", 100_000)
    assert parquet.batch_rows(pq.ParquetFile(tmp_path / "wide.parquet").metadata) == 9  # ~10 KB a row
    assert parquet.batch_rows(pq.ParquetFile(tmp_path / "narrow.parquet").metadata) == 1024
    texts = [d.text for d in read_all(str(tmp_path / "wide.parquet"), "parquet")]
    assert texts == wide


def test_links_that_loop_folders_and_empty_gzip_are_quarantined(tmp_path):
    os.symlink(tmp_path / "b.jsonl", tmp_path / "a.jsonl")
    os.symlink(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "e.jsonl.gz").write_bytes(gzip.compress(b""))
    got = {item.detail.split(" ")[0]: item.reason for item in read_all(str(tmp_path / "*.jsonl*"), "jsonl")}
    assert got == {"a.jsonl": "read.unreadable_file", "b.jsonl": "read.unreadable_file",
                   "dir.jsonl": "read.not_a_file", "e.jsonl.gz": "read.empty_file"}
    everything = read_all(str(tmp_path / "*"), "jsonl")  # `*` matches folders on purpose: not reported
    assert [i.detail.split(" ")[0] for i in everything] == ["a.jsonl", "b.jsonl", "e.jsonl.gz"]


def _raw_record(uri: str, body: bytes, length: str | None = "auto") -> bytes:
    payload = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
    size = str(len(payload)) if length == "auto" else length
    headers = b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: " + uri.encode() + b"\r\n"
    headers += b"Content-Length: " + size.encode() + b"\r\n" if size is not None else b""
    return headers + b"\r\n" + payload + b"\r\n\r\n"


@pytest.mark.parametrize("length", ["9999", None, "12ab"])
def test_a_bad_content_length_in_a_plain_warc_does_not_swallow_the_next_record(tmp_path, length):
    records = [_raw_record("https://a.example/1", b"<p>one</p>"),
               _raw_record("https://a.example/2", b"<p>x</p>", length),
               _raw_record("https://a.example/3", b"<p>three</p>")]
    (tmp_path / "w.warc").write_bytes(b"".join(records))
    items = read_all(str(tmp_path / "w.warc"), "warc")
    assert [d.url for d in items if isinstance(d, Document)] == ["https://a.example/1", "https://a.example/3"]
    assert kinds(items)["read.corrupt_record"] == 1


def test_a_target_uri_without_a_scheme_is_skipped_as_invalid(tmp_path):
    records = [_raw_record("../../etc/passwd", b"<p>x</p>"), _raw_record("file:///etc/passwd", b"<p>x</p>")]
    (tmp_path / "w.warc").write_bytes(b"".join(records))
    assert kinds(read_all(str(tmp_path / "w.warc"), "warc")) == Counter({"skipped.invalid_uri": 1, "skipped.file": 1})
