"""The `page_text` stage: HTML page bytes -> every visible line of the page, nothing removed.

The naive baseline that main-text extraction (`extract`) is measured against, and the "raw"
variant of `configs/ablate-curation.yaml`: navigation, footers, link lists and cookie banners
all stay. The page is decoded as `extract` decodes it (`pipeline.decode`), parsed with lxml,
and its text is written out the way a text browser would: `<script>`, `<style>`, `<head>` and
other invisible elements dropped, a line break around every block element and `<br>`, runs of
spaces collapsed, blank lines dropped. No in-page deduplication. lxml never hangs on real pages
and takes ~1 ms a page, so unlike `extract` it runs in the worker, not in a sandbox. Documents
that arrived as text (JSONL, Parquet) pass through untouched.

Config: `- page_text: {max_page_bytes: 5000000}`
"""

from __future__ import annotations

import re

from pydantic import Field

from pipeline.decode import DecodeFailure, decode_html
from pipeline.extract import PageStage
from pipeline.record import Document
from pipeline.stage import Reject, StageParams, register
from pipeline.stats import StageStats

INVISIBLE = frozenset({"script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object"})
# HTML's block-level and table elements: each starts and ends a line in a text rendering.
BLOCKS = frozenset("""address article aside blockquote body dd details dialog div dl dt fieldset figcaption figure
    footer form h1 h2 h3 h4 h5 h6 header hr html li main nav ol p pre section summary table tbody td tfoot th
    thead tr ul option select caption legend center""".split())
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


@register
class PageText(PageStage):
    """Every visible text line of an HTML page (no boilerplate removal): the naive baseline."""

    name = "page_text"
    materialize = True  # as `extract`: what follows reruns from its text, not from the pages

    class Params(StageParams):
        max_page_bytes: int = Field(5_000_000, gt=0, description="larger pages are rejected unparsed")
        min_text_chars: int = Field(1, ge=0, description="reject pages whose visible text is shorter")

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        if not isinstance(raw := self.page_of(doc, stats), bytes):
            return raw
        try:
            html, charset = decode_html(raw, doc.metadata.get("content_type"))
        except DecodeFailure as failure:
            return self.reject(failure.reason)
        text = visible_text(html)
        if text is None:
            return self.reject("unparseable_html")
        if len(text) < self.params.min_text_chars:
            return self.reject("no_visible_text")
        extras = {k: v for k, v in doc.extras.items() if k != "raw"}
        return doc.replace(text=text, metadata={**doc.metadata, "charset": charset}, extras=extras)


def visible_text(html: str) -> str | None:
    """The page's visible text, one line per block element; None when lxml cannot parse it."""
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return None
    pieces: list[str] = []
    walk = lxml.etree.iterwalk(root, events=("start", "end"))
    for event, element in walk:  # iterative: a deeply nested page cannot exhaust the stack
        tag = element.tag.lower() if isinstance(element.tag, str) else ""  # "": a comment
        hidden = not tag or tag in INVISIBLE
        if event == "start":
            if hidden:
                walk.skip_subtree()
                continue
            pieces.append("\n" if tag in BLOCKS or tag == "br" else "")
            pieces.append(element.text or "")
        else:
            pieces.append("\n" if tag in BLOCKS else "")
            pieces.append(element.tail or "")
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(pieces).split("\n"))
    return "\n".join(line for line in lines if line)
