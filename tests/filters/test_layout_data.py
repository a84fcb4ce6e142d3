"""The `*_v2` filters on real hard-wrapped newswire (../shared/data/financial_reuters21578) and
on WikiText-2 (../shared/data/general_wikitext2), read with thresher's readers and filtered
unscoped with default thresholds (bench/hardwrap.py prints the full before/after table).

Reuters: the line-based filters keep >= 90% of the prose stories (>= 5 sentences and >= 50
words besides the closing "Reuter": long enough for C4's and Gopher's page minimums) with >= 95%
of their characters. Shorter stories and number tables still fail C4's 5-sentence page minimum
and FineWeb's punctuated-line rule, as they should. WikiText-2: every article is kept, but for
two that fail Gopher's 80%-alphabetic-words rule on their own (0.79: quotations and ISBNs).
"""

from __future__ import annotations

import re
import statistics

import pytest

from filters.layout import wrap_width
from filters.text import sentence_count
from filters.words import words
from pipeline.options import InputSpec, ReadOptions
from pipeline.readers import list_files, read_file
from pipeline.record import Document
from pipeline.stage import Reject, build_stage
from pipeline.stats import StageStats
from tests.conftest import shared_path

pytestmark = pytest.mark.slow  # ~30 s: every Reuters story through several filters

SIGN_OFF = re.compile(r"\s*\breuter\s*$", re.IGNORECASE)


def read(spec: InputSpec) -> list[Document]:
    return [item for file in list_files(spec) for item in read_file(file, spec, ReadOptions())
            if isinstance(item, Document)]


def kept_shares(name: str, docs: list[Document]) -> list[float | None]:
    """Per document: the share of its non-whitespace characters the stage keeps, None if dropped."""
    stage, shares = build_stage(name, {}), []
    for doc in docs:
        out = stage.process_document(doc, StageStats())
        visible = len("".join(doc.text.split()))
        shares.append(None if isinstance(out, Reject) else len("".join(out.text.split())) / visible)
    return shares


@pytest.fixture(scope="module")
def reuters() -> list[Document]:
    path = shared_path("financial_reuters21578")
    docs = read(InputSpec(path=f"{path}/*.jsonl.gz", format="jsonl", source="reuters", text_field="body"))
    assert len(docs) == 13_893  # the 15,000 stories less the headline-only ones
    return docs


@pytest.fixture(scope="module")
def prose(reuters) -> list[Document]:
    return [doc for doc in reuters
            if sentence_count(SIGN_OFF.sub("", doc.text)) >= 5 and len(words(doc.text)) >= 50]


@pytest.fixture(scope="module")
def wikitext() -> list[Document]:
    path = shared_path("general_wikitext2")
    docs = read(InputSpec(path=f"{path}/*.txt.gz", format="text", source="wikitext", separator="^ = [^=].* = $"))
    assert len(docs) == 60
    return docs


def test_reuters_prose_is_detected_as_hard_wrapped(prose):
    assert len(prose) > 5000
    assert sum(wrap_width(doc.text) is not None for doc in prose) >= 0.95 * len(prose)


@pytest.mark.parametrize("name", ["c4_quality_v2", "gopher_repetition_v2", "fineweb_quality_v2"])
def test_line_filters_keep_reuters_prose_whole(name, prose):
    shares = kept_shares(name, prose)
    kept = [share for share in shares if share is not None]
    assert len(kept) >= 0.90 * len(shares)
    assert statistics.median(kept) >= 0.95 and statistics.mean(kept) >= 0.95


def test_c4_v2_keeps_whole_paragraphs_where_c4_kept_fragments(reuters):
    before = [share for share in kept_shares("c4_quality", reuters) if share is not None]
    after = [share for share in kept_shares("c4_quality_v2", reuters) if share is not None]
    assert statistics.median(before) < 0.3  # wrapped lines removed as fragments, the rest stitched
    assert len(after) > 1.3 * len(before)
    assert statistics.median(after) >= 0.95 and statistics.mean(after) >= 0.95


@pytest.mark.parametrize("name, at_least", [("c4_quality_v2", 60), ("gopher_repetition_v2", 60),
                                            ("fineweb_quality_v2", 60), ("gopher_quality_v2", 58)])
def test_wikitext_articles_are_kept(name, at_least, wikitext):
    assert sum(share is not None for share in kept_shares(name, wikitext)) >= at_least
