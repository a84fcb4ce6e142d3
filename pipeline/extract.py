"""The `extract` stage: HTML page bytes -> main text with trafilatura.

Each worker keeps one sandboxed child process (see `pipeline.sandbox`) that decodes the page
(`pipeline.decode`: declared charset, else detected), parses it once and runs trafilatura's
extraction on the tree (the same text `trafilatura.extract()` returns);
a page that uses more than `timeout_s` of CPU time (so the verdict does not depend on how
busy the machine is) or crashes the child is rejected with its reason, never a hang. Pages over
`max_page_bytes` are rejected before parsing. Title, date and the charset used go
into `metadata`; the URL is kept (the page's canonical URL if the record had none). Documents that
arrived as text (JSONL, Parquet) pass through untouched.

Config: `- extract: {favor_precision: false, include_comments: true, timeout_s: 10}`
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
from pydantic import Field, model_validator

from pipeline.decode import DecodeFailure, decode_html
from pipeline.record import Document
from pipeline.sandbox import SandboxCrashed, SandboxTimeout, get_sandbox
from pipeline.stage import DocumentStage, Reject, StageParams, register
from pipeline.stats import StageStats

SANDBOX_TARGET = "pipeline.extract:extract_page"


class PageStage(DocumentStage):
    """A stage that turns a page's bytes (the read stage's `raw` column, dropped from its
    output) into text; a document without a page passes through (`passthrough_text`)."""

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return pa.schema([f for f in input_schema if f.name != "raw"])

    def page_of(self, doc: Document, stats: StageStats) -> bytes | Document | Reject:
        """The page's bytes, or what `process_document` returns instead: the document itself
        when it has no page, a rejection when the page is over `max_page_bytes`."""
        raw = doc.extras.get("raw")
        if raw is None:
            stats.count("passthrough_text")
            return doc
        if len(raw) > self.params.max_page_bytes:
            return self.reject("page_too_large")
        return raw


@register
class Extract(PageStage):
    """Main-text extraction from HTML (trafilatura), time- and size-capped per page."""

    name = "extract"
    # Extraction costs ~50x the filters after it: keep its text, so that changing a filter
    # reruns the filters from here and not from the raw pages (and the report measures it).
    materialize = True

    class Params(StageParams):
        favor_precision: bool = Field(False, description="keep less text, less boilerplate")
        favor_recall: bool = Field(False, description="keep more text, more boilerplate")
        include_comments: bool = Field(True, description="keep the page's comment section")
        include_tables: bool = True
        deduplicate: bool = Field(False, description="trafilatura's in-page duplicate removal")
        max_page_bytes: int = Field(5_000_000, gt=0, description="larger pages are rejected unparsed")
        timeout_s: float = Field(10.0, gt=0, description="per-page extraction CPU-time limit")
        min_text_chars: int = Field(1, ge=0, description="reject pages whose main text is shorter")

        @model_validator(mode="after")
        def _one_bias(self):
            if self.favor_precision and self.favor_recall:
                raise ValueError("favor_precision and favor_recall cannot both be true; pick one")
            return self

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        if not isinstance(raw := self.page_of(doc, stats), bytes):
            return raw
        options = self.params.model_dump()
        payload = (raw, doc.url, doc.metadata.get("content_type"), options)
        try:
            result = get_sandbox(SANDBOX_TARGET).call(payload, timeout=self.params.timeout_s)
        except SandboxTimeout:
            return self.reject("timeout")
        except SandboxCrashed:
            return self.reject("crashed")
        except RuntimeError:
            return self.reject("error")
        if "reject" in result:
            return self.reject(result["reject"])
        if len(result["text"]) < self.params.min_text_chars:
            return self.reject("no_main_text")
        if result["charset"].endswith("(detected)"):
            stats.count("charset_detected")
        extras = {k: v for k, v in doc.extras.items() if k != "raw"}
        metadata = {**doc.metadata, **result["metadata"], "charset": result["charset"]}
        return doc.replace(text=result["text"], url=doc.url or result["url"], metadata=metadata, extras=extras)


def sandbox_init() -> None:
    """Import the extraction libraries in the sandbox before the first timed call."""
    import htmldate  # noqa: F401
    import trafilatura  # noqa: F401

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)
    # The first call compiles date and author regexes (~1 s); pay that here, not in a page's time.
    page = b"<html><body><p class='date'>Posted on 3 March 2024 by Ann Lee</p><p>Warm up text.</p></body></html>"
    extract_page((page, None, None, Extract.Params().model_dump()))


def extract_page(payload: tuple[bytes, str | None, str | None, dict[str, Any]]) -> dict[str, Any]:
    """Runs in the sandbox: decode, parse once, read title/date/URL, extract the main text."""
    import trafilatura
    from htmldate import find_date
    from trafilatura.metadata import extract_title, extract_url
    from trafilatura.utils import load_html, normalize_unicode
    from trafilatura.xml import xmltotxt

    raw, url, content_type, options = payload
    try:
        html, charset = decode_html(raw, content_type)
    except DecodeFailure as failure:
        return {"reject": failure.reason}
    tree = load_html(html) if html.strip() else None
    if tree is None:
        tree = _parse_leniently(html)
    if tree is None:
        return {"reject": "unparseable_html"}
    # trafilatura's own `with_metadata` also hunts authors, categories and licences, which
    # costs ~35% of the extraction time; title, date and canonical URL cost ~3%.
    metadata = {"title": extract_title(tree), "date": find_date(tree, extensive_search=False, original_date=True)}
    url = url or extract_url(tree)
    document = trafilatura.bare_extraction(
        tree, url=url,
        favor_precision=options["favor_precision"], favor_recall=options["favor_recall"],
        include_comments=options["include_comments"], include_tables=options["include_tables"],
        deduplicate=options["deduplicate"],
    )
    if document is None:
        return {"reject": "no_main_text"}
    # The string trafilatura.extract(output_format="txt") returns: body, then comments, NFC.
    text = xmltotxt(document.body, False) if document.body is not None else ""
    if document.commentsbody is not None:
        text = f"{text}\n{xmltotxt(document.commentsbody, False)}".strip()
    metadata = {k: v for k, v in metadata.items() if v}
    return {"text": normalize_unicode(text), "url": url, "charset": charset, "metadata": metadata}


def _parse_leniently(html: str):
    """trafilatura refuses pages that do not start like HTML and parse into < 2 elements
    (e.g. a page preceded by a wrapper line, or a bare fragment); lxml's document parser
    still builds <html><body> around them, and extraction then recovers their text."""
    import lxml.etree
    import lxml.html

    try:
        return lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return None
