"""The four web filters decide on real web pages exactly as before the `*_v2` filters existed,
and the v2 filters differ from them only where the layout they undo is present.

Documents: the 1,482 pages of ../shared/data that thresher's extract stage keeps (the WARC
crawls, CLEANEVAL, Dragnet and Zyte pages from the fineweb-web recipe run, and the Common Crawl
sample), as in test_parity_datatrove.py. Every document goes through each filter alone; its
outcome is the drop reason, or `kept:` and a hash of the kept text (C4 rewrites it).
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from filters.layout import untokenize_wikitext, wrap_width
from pipeline.record import Document
from pipeline.stage import Reject, build_stage
from pipeline.stats import StageStats
from tests.filters.test_fineweb_recipe import cc2019_output, extracted, recipe_output

pytestmark = pytest.mark.slow

FILTERS = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")

# Outcomes of main's code (commit 985fedf, before filters/layout.py) on these documents: the
# sha256 (first 16 hex digits) of the sorted `id<TAB>outcome` lines, and the outcomes counted.
# Obtained by running the four filters of that commit over the same extracted documents.
BEFORE = {
    "gopher_repetition": ("8d1b52f7e3622244", {
        "kept": 1256, "duplicate_10gram_chars_too_high": 3, "duplicate_5gram_chars_too_high": 38,
        "duplicate_6gram_chars_too_high": 3, "duplicate_7gram_chars_too_high": 1, "duplicate_8gram_chars_too_high": 3,
        "duplicate_line_chars_too_high": 13, "duplicate_line_fraction_too_high": 53,
        "duplicate_paragraph_chars_too_high": 1, "duplicate_paragraph_fraction_too_high": 13, "empty": 22,
        "top_2gram_chars_too_high": 33, "top_3gram_chars_too_high": 19, "top_4gram_chars_too_high": 24}),
    "gopher_quality": ("236de7eb39dcf00a", {
        "kept": 893, "mean_word_length_too_long": 7, "too_few_alpha_words": 341, "too_few_stop_words": 96,
        "too_few_words": 135, "too_many_bullet_lines": 3, "too_many_ellipsis_lines": 7}),
    "c4_quality": ("50ae5880145d8174", {"kept": 852, "contains_curly_bracket": 10, "too_few_sentences": 620}),
    "fineweb_quality": ("4e3547f74fd8f5ef", {
        "kept": 801, "empty": 22, "too_few_punctuated_lines": 516, "too_many_duplicate_line_chars": 108,
        "too_many_newlines": 14, "too_many_short_lines": 21}),
}

def has_blank_line(text: str) -> bool:
    return any(line and not line.strip() for line in text.split("\n"))


def has_trailing_space(text: str) -> bool:
    return any(line.strip() and line != line.rstrip() for line in text.split("\n"))


def has_wikitext_markup(text: str) -> bool:
    return untokenize_wikitext(text) != text


# What each v2 filter undoes besides hard wraps: an outcome of a v2 filter that differs from
# v1's must be on a page that is hard-wrapped or has one of these.
UNDONE = {
    "gopher_repetition": (has_blank_line, has_wikitext_markup),
    "gopher_quality": (has_wikitext_markup,),
    "c4_quality": (),
    "fineweb_quality": (has_trailing_space,),
}
# v2 decisions that differ from v1's on these pages (changes to filters/layout.py move these).
V2_CHANGES = {"gopher_repetition": 15, "gopher_quality": 0, "c4_quality": 7, "fineweb_quality": 19}


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> list[tuple[str, str]]:
    docs = (extracted(recipe_output(tmp_path_factory) / "01-extract")
            + extracted(cc2019_output(tmp_path_factory) / "01-extract"))
    assert len(docs) == 1482
    return docs


def outcomes(name: str, documents) -> dict[str, str]:
    stage, result = build_stage(name, {}), {}
    for doc_id, text in documents:
        out = stage.process_document(Document(id=doc_id, text=text), StageStats())
        result[doc_id] = (out.reason.split(".", 1)[1] if isinstance(out, Reject)
                          else "kept:" + hashlib.sha256(out.text.encode()).hexdigest()[:12])
    return result


def digest(result: dict[str, str]) -> str:
    return hashlib.sha256("\n".join(f"{i}\t{result[i]}" for i in sorted(result)).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", FILTERS)
def test_web_filters_decide_as_before(name, documents):
    result = outcomes(name, documents)
    counts = Counter("kept" if outcome.startswith("kept:") else outcome for outcome in result.values())
    assert (digest(result), dict(counts)) == BEFORE[name]


@pytest.mark.parametrize("name", FILTERS)
def test_v2_differs_only_where_there_is_layout_to_undo(name, documents):
    texts = dict(documents)
    before, after = outcomes(name, documents), outcomes(f"{name}_v2", documents)
    changed = sorted(doc_id for doc_id in texts if before[doc_id] != after[doc_id])
    print(f"\n{name}_v2: {len(changed)} of {len(texts)} outcomes differ from {name}'s")
    for doc_id in changed:
        print(f"  {doc_id}: {before[doc_id]} -> {after[doc_id]}")
    assert all(wrap_width(texts[i]) is not None or any(has(texts[i]) for has in UNDONE[name]) for i in changed)
    assert len(changed) == V2_CHANGES[name]
