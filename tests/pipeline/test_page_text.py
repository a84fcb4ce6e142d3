"""The `page_text` stage: every visible line of a page, boilerplate included, nothing invisible."""

from __future__ import annotations

import gzip

from pipeline.page_text import PageText, visible_text
from pipeline.record import Document
from pipeline.stage import Reject
from pipeline.stats import StageStats
from tests.conftest import shared_path

PAGE = """<html><head><title>Title</title><style>p {color: red}</style><script>var x = 1;</script></head>
<body><!-- a comment --><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<div>Hello <b>world</b>,<br>second   line<script>track()</script> after the script</div>
<ul><li>one</li><li>two</li></ul><noscript>enable JS</noscript><footer>© 2024 Example</footer>
<p>Café</p></body></html>"""


def test_every_visible_line_is_kept_and_nothing_invisible():
    assert visible_text(PAGE).split("\n") == [
        "Home | About", "Hello world,", "second line after the script", "one", "two", "© 2024 Example", "Café"]


def test_the_stage_reads_pages_and_passes_text_through():
    stage = PageText(PageText.Params())
    stats = StageStats()
    page = Document(id="p", source="s", text="", extras={"raw": PAGE.encode()})
    out = stage.process_document(page, stats)
    assert out.text.startswith("Home | About\nHello world,") and "raw" not in out.extras
    assert out.metadata["charset"]
    text = Document(id="t", source="s", text="already text")
    assert stage.process_document(text, stats) is text and stats.counters["passthrough_text"] == 1
    big = PageText(PageText.Params(max_page_bytes=10)).process_document(page, stats)
    assert isinstance(big, Reject) and big.reason == "page_text.page_too_large"
    empty = Document(id="e", source="s", text="", extras={"raw": b"<html><body><script>x</script></body></html>"})
    assert stage.process_document(empty, stats).reason == "page_text.no_visible_text"


def test_it_keeps_more_than_main_text_extraction_on_real_pages():
    """On a Dragnet page the visible lines hold the gold main text's words, and more besides."""
    page = shared_path("extraction_dragnet", "html", "100.html.gz")
    html = gzip.decompress(page.read_bytes()).decode("utf-8", "replace")
    gold = gzip.decompress(shared_path("extraction_dragnet", "gold", "100.txt.gz").read_bytes()).decode()
    text = visible_text(html)
    words = set(text.split())
    gold_words = gold.split()
    assert sum(w in words for w in gold_words) > 0.9 * len(gold_words)
    assert len(text) > 1.2 * len(gold)
