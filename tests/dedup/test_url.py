"""url_dedup: the URL normaliser, the representative rule (incl. `latest`), documents without
a URL, and runs on the real WARC sample and on the demo crawl (its tracking-URL copy), with the
same bytes on 1 and 2 workers."""

from __future__ import annotations

import numpy as np
import pytest

from dedup.url import UrlDedup, crawl_time, normalize_url
from pipeline.demo.crawl import write_sample
from pipeline.record import Document
from tests.conftest import shared_path
from tests.dedup.conftest import digest_outputs, manifest, rows, run, run_global, stage_dir


@pytest.mark.parametrize("url, expected", [
    ("HTTPS://News.Example.COM:443/a/b/?utm_source=x&b=2&a=1#top", "https://news.example.com/a/b?a=1&b=2"),
    ("http://example.com:80/", "http://example.com"),
    ("http://example.com:8080/x", "http://example.com:8080/x"),
    ("https://example.com/?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&_ga=5&UTM_Medium=6", "https://example.com"),
    ("https://example.com/p?b=1&a=2&a=1", "https://example.com/p?a=1&a=2&b=1"),
    ("https://example.com/p?q=a b", "https://example.com/p?q=a+b"),
    ("https://example.com/p?q=a+b", "https://example.com/p?q=a+b"),
    ("https://example.com/P/", "https://example.com/P"),  # paths stay case-sensitive
    ("http://example.com/#section", "http://example.com"),
    ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
    ("dns:example.com", None),
    ("not a url", None),
    ("", None),
    (None, None),
    ("http://example.com:99999/", None),
])
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


def test_tracking_parameters_are_configurable():
    assert normalize_url("https://x.org/?ref=home&utm_source=a", ("ref",)) == "https://x.org?utm_source=a"


def doc(i: str, url: str | None, text: str = "some text", quality: float | None = None, date: str | None = None):
    return Document(id=i, url=url, text=text, quality_score=quality, metadata={"warc_date": date} if date else {})


def test_keeps_one_document_per_normalised_url(client, tmp_path):
    parts = [[doc("a", "https://news.example/story?utm_source=mail", "short"),
              doc("b", "https://news.example/other"), doc("c", None), doc("d", "")],
             [doc("e", "HTTPS://NEWS.EXAMPLE:443/story/", "a longer text"), doc("f", None),
              doc("g", "https://news.example/story#comments", "short")]]
    extra, stats, out = run_global(UrlDedup(), parts, tmp_path, client)
    assert [r["id"] for r in rows(out)] == ["b", "c", "d", "e", "f"]  # e: longest; c, d, f have no URL
    rejected = {r["id"]: (r["reason"], r["metadata"]["duplicate_of"]) for r in rows(out, "rejected")}
    assert rejected == {"a": ("url_dedup.duplicate_url", "e"), "g": ("url_dedup.duplicate_url", "e")}
    assert extra["audit"]["group_size_histogram"] == {"3": 1} and stats.rejected == {"url_dedup.duplicate_url": 2}


def test_latest_keeps_the_newest_crawl(client, tmp_path):
    parts = [[doc("old", "http://x.org/a", "long text here", 0.9, "2020-01-01T00:00:00Z"),
              doc("new", "http://x.org/a/", "short", 0.1, "2024-05-01T10:00:00Z"),
              doc("undated", "http://x.org/a", "the longest text of all")]]
    stage = UrlDedup(UrlDedup.Params(representative=["latest", "quality_score", "length", "id"]))
    _, _, out = run_global(stage, parts, tmp_path / "latest", client)
    assert [r["id"] for r in rows(out)] == ["new"]
    _, _, out = run_global(UrlDedup(), parts, tmp_path / "default", client)
    assert [r["id"] for r in rows(out)] == ["old"]  # highest quality_score


def test_crawl_time_reads_iso_dates_as_utc():
    assert crawl_time('{"warc_date": "2024-05-01T10:00:00Z"}', "warc_date") == 1714557600.0
    assert crawl_time('{"warc_date": "2024-05-01T10:00:00"}', "warc_date") == 1714557600.0  # no zone: UTC
    assert crawl_time('{"warc_date": "2024-05-01T12:00:00+02:00"}', "warc_date") == 1714557600.0
    assert np.isnan(crawl_time('{"warc_date": "yesterday"}', "warc_date")) and np.isnan(crawl_time(None, "d"))


@pytest.fixture(scope="module")
def crawls(tmp_path_factory):
    sample = write_sample(tmp_path_factory.mktemp("demo"))
    warcs = shared_path("warc_real_crawls")
    return [{"path": str(warcs / "*.warc.gz"), "format": "warc", "source": "real"},
            {"path": str(sample / "crawl" / "*.warc.gz"), "format": "warc", "source": "demo"},
            {"path": str(sample / "feeds" / "*.jsonl"), "format": "jsonl", "source": "wire"}]


STAGES = [{"url_dedup": {"representative": ["latest", "quality_score", "length", "id"]}}]
GUARDS = {"max_quarantined_files": 1}  # the demo sample's cut WARC file, quarantined on purpose


@pytest.fixture(scope="module")
def reference(client2, crawls, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_workers")
    run(client2, out, crawls, STAGES, read={"max_docs_per_part": 8}, guards=GUARDS)
    return out


def test_removes_tracking_copies_and_recrawls_and_nothing_else(reference):
    read, stage = rows(stage_dir(reference, "read")), stage_dir(reference, "url_dedup")
    removed = rows(stage, "rejected")
    by_id = {r["id"]: r for r in read}
    pairs = sorted((r["url"], by_id[r["metadata"]["duplicate_of"]]["url"]) for r in removed)
    assert pairs == [
        ("http://tokemon.sb.statsbiblioteket.dk/", "http://tokemon.sb.statsbiblioteket.dk/"),  # re-crawled 3 times
        ("http://tokemon.sb.statsbiblioteket.dk/", "http://tokemon.sb.statsbiblioteket.dk/"),
        ("https://www.dailyledger.example/rates-hold?utm_source=newsletter",
         "https://www.dailyledger.example/rates-hold"),
    ]
    assert {r["reason"] for r in removed} == {"url_dedup.duplicate_url"}
    recrawls = sorted((r for r in read if r["url"] == "http://tokemon.sb.statsbiblioteket.dk/"),
                      key=lambda r: r["metadata"]["warc_date"])
    assert {r["metadata"]["duplicate_of"] for r in removed if "tokemon" in r["url"]} == {recrawls[-1]["id"]}
    assert len(rows(stage)) == len(read) - 3
    assert manifest(stage)["audit"]["group_size_histogram"] == {"2": 1, "3": 1}


def test_same_bytes_on_one_and_two_workers(client1, crawls, reference, tmp_path):
    run(client1, tmp_path, crawls, STAGES, read={"max_docs_per_part": 8}, guards=GUARDS)
    assert digest_outputs(tmp_path) == digest_outputs(reference)
