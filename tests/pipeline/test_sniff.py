"""A file given the wrong `format` is quarantined as `read.wrong_format` with what it looks like,
never misread or crashed on; a WARC whose first record is damaged still goes to the WARC reader."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import InputSpec, ReadOptions
from pipeline.demo.warcs import Page, write_warc
from pipeline.readers import Quarantined, list_files, read_file
from pipeline.readers.warc import read as read_warc
from pipeline.record import Document

LINES = "".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(3)).encode()


def items(path, fmt: str) -> list:
    spec = InputSpec(path=str(path), format=fmt, source="s")
    return [item for f in list_files(spec) for item in read_file(f, spec, ReadOptions())]


def only_problem(path, fmt: str) -> str:
    (item,) = items(path, fmt)
    assert isinstance(item, Quarantined) and item.reason == "read.wrong_format"
    return item.detail


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(LINES)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(LINES))
    (tmp_path / "hidden.jsonl").write_bytes(gzip.compress(LINES))  # gzip under a plain name
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "a.parquet")
    (tmp_path / "a.html").write_text("<html><body><p>hi</p></body></html>")
    write_warc(tmp_path / "a.warc.gz", [Page("https://a.example/", b"<html><p>hi</p></html>")])
    return tmp_path


@pytest.mark.parametrize("name, fmt, looks_like", [
    ("a.jsonl.gz", "warc", "JSON lines"), ("a.jsonl", "warc", "JSON lines"), ("a.parquet", "warc", "a Parquet file"),
    ("a.jsonl", "parquet", "JSON lines"), ("a.warc.gz", "parquet", "gzip-compressed data"),
    ("a.parquet", "jsonl", "a Parquet file"), ("a.warc.gz", "jsonl", "a WARC file"), ("a.html", "jsonl", "HTML"),
    ("a.warc.gz", "html", "a WARC file"), ("a.jsonl", "html", "JSON lines"), ("a.parquet", "text", "a Parquet file"),
    ("hidden.jsonl", "jsonl", "gzip-compressed data under a name without its extension"),
])
def test_a_file_of_another_format_is_quarantined_with_what_it_looks_like(files, name, fmt, looks_like):
    assert only_problem(files / name, fmt).startswith(f"{name} looks like {looks_like}")


@pytest.mark.parametrize("name, fmt", [("a.jsonl", "jsonl"), ("a.jsonl.gz", "jsonl"), ("a.parquet", "parquet"),
                                       ("a.html", "html"), ("a.warc.gz", "warc"), ("a.jsonl", "text")])
def test_a_file_of_its_format_is_read(files, name, fmt):
    assert any(isinstance(item, Document) for item in items(files / name, fmt))


def test_a_warc_with_a_damaged_first_record_is_still_read_past_it(tmp_path):
    path = write_warc(tmp_path / "c.warc.gz", [Page(f"https://a.example/{i}", b"<html><p>x</p></html>")
                                               for i in range(3)])
    data = path.read_bytes()
    first = gzip.decompress(data[:data.index(b"\x1f\x8b\x08", 3)])  # the first gzip member
    path.write_bytes(gzip.compress(first.replace(b"WARC/1.0", b"XARC/9.9", 1)) + data[data.index(b"\x1f\x8b\x08", 3):])
    got = items(path, "warc")
    assert sum(isinstance(i, Document) for i in got) == 3
    assert {i.reason for i in got if isinstance(i, Quarantined)} == {"read.corrupt_record"}


def test_the_warc_reader_quarantines_what_it_cannot_parse_instead_of_crashing(tmp_path):
    # warcio takes JSON lines for ARC records and reports a negative offset; seeking there raised.
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(LINES))
    spec = InputSpec(path=str(tmp_path / "a.jsonl.gz"), format="warc", source="s")
    (file,) = list_files(spec)
    problems = [i for i in read_warc(file, spec, ReadOptions()) if isinstance(i, Quarantined)]
    assert problems and "\n" not in problems[0].detail
