"""The extract stage: main text and metadata, and every way a page can be refused."""

import json

from pipeline.config import InputSpec
from pipeline.extract import Extract
from pipeline.read import read_schema
from pipeline.record import Document, documents_to_table

ARTICLE = b"""<html><head><title>Rates rise again</title><meta charset="utf-8"></head><body>
<nav><a href="/">Home</a> | <a href="/markets">Markets</a> | <a href="/login">Log in</a></nav>
<article><h1>Rates rise again</h1>
<p>The central bank raised its benchmark interest rate by a quarter point on Tuesday, the third increase
this year, citing persistent inflation in services and a labour market that has cooled only slowly.</p>
<p>Officials said further moves would depend on incoming data, and markets priced in one more rise before
the end of the year, while long-term bond yields were little changed after the announcement.</p>
</article><footer>Copyright 2026 Example News. All rights reserved. Privacy policy.</footer></body></html>"""

SCHEMA = read_schema([InputSpec(path="x", format="html", source="s")])


def run(pages: dict[str, bytes | None], **params):
    docs = [Document(id=k, source="s", text=None if v is not None else "plain text doc",
                     extras={"raw": v}) for k, v in pages.items()]
    return Extract(Extract.Params(**params)).process(documents_to_table(docs, SCHEMA))


def reasons(result) -> dict[str, str]:
    return dict(zip(result.rejected["id"].to_pylist(), result.rejected["reason"].to_pylist()))


def test_main_text_title_and_schema():
    result = run({"a": ARTICLE, "t": None})
    rows = {r["id"]: r for r in result.kept.to_pylist()}
    assert "quarter point" in rows["a"]["text"] and "Log in" not in rows["a"]["text"]
    assert json.loads(rows["a"]["metadata"])["title"] == "Rates rise again"
    assert rows["t"]["text"] == "plain text doc"  # text documents pass through
    assert "raw" not in result.kept.column_names and "raw" in result.rejected.column_names
    assert result.stats.counters["passthrough_text"] == 1


def test_bad_pages_are_rejected_with_reasons():
    big = b"<html><body>" + b"<p>word word word.</p>" * 1_500_000 + b"</body></html>"  # ~33 MB
    result = run({
        "binary": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "huge": big,
        "invalid_utf8": b"<html><body><p>" + bytes(range(128, 256)) * 30 + b"</p></body></html>",
        "empty": b"",
        "ok": ARTICLE,
    })
    assert reasons(result) == {"binary": "extract.binary_content", "huge": "extract.page_too_large",
                               "invalid_utf8": "extract.undecodable", "empty": "extract.unparseable_html"}
    assert result.kept["id"].to_pylist() == ["ok"]
    assert result.stats.rejected["extract.page_too_large"] == 1
    rejected = {r["id"]: r for r in result.rejected.to_pylist()}
    assert rejected["binary"]["raw"].startswith(b"\x89PNG") and rejected["binary"]["stage"] == "extract"


def test_page_over_time_limit_is_rejected_and_next_page_works():
    slow = b"<html><body>" + b"<div><p>some text here, and more.</p></div>" * 20000 + b"</body></html>"
    result = run({"slow": slow, "ok": ARTICLE}, timeout_s=0.05)
    assert reasons(result) == {"slow": "extract.timeout"}
    assert result.kept["id"].to_pylist() == ["ok"]


def test_favor_flags_are_exclusive():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="cannot both be true"):
        Extract.Params(favor_precision=True, favor_recall=True)
