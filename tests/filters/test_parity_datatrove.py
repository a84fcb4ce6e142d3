"""Decision parity with datatrove (the implementation that produced FineWeb) for gopher_quality,
gopher_repetition, c4_quality (the document decision; also with FineWeb's setting, no
terminal-punctuation rule) and fineweb_quality.

Documents: what thresher's extract stage makes of ../shared/data/extraction_cleaneval (taken
from the fineweb-web recipe run that test_fineweb_recipe.py makes once per session) and of
../shared/data/web_text_cc2019_sample (JSONL, passed through extract untouched). Each thresher
filter is compared with datatrove's filter of the same name built with the same thresholds.
Per filter the test prints the agreement over all documents and |both drop| / |either drops|,
and every disagreeing id with both reasons (`pytest -s` shows them); it requires >= 99% and
>= 90%.
"""

from __future__ import annotations

import pytest

from pipeline.record import Document
from pipeline.stage import Reject, build_stage
from pipeline.stats import StageStats
from tests.filters.test_fineweb_recipe import cc2019_output, extracted, recipe_output

pytest.importorskip("datatrove")
pytest.importorskip("spacy")

FILTERS = ("gopher_repetition", "gopher_quality", "fineweb_quality", "c4_quality", "c4_quality_fineweb")
# a filter name -> (thresher stage, its params) where they differ from the name and the defaults
SETTINGS = {"c4_quality_fineweb": ("c4_quality", {"end_punctuation": None})}


@pytest.fixture(scope="session")
def documents(tmp_path_factory) -> list[tuple[str, str]]:
    cleaneval = extracted(recipe_output(tmp_path_factory) / "01-extract", "cleaneval")
    docs = cleaneval + extracted(cc2019_output(tmp_path_factory) / "01-extract")
    assert len(cleaneval) > 450 and len(docs) > 900
    return docs


def datatrove_filters(stages: dict) -> dict:
    """datatrove's four filters with the thresholds of thresher's stages."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    q, r, c, f = (stages[n].params for n in ("gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality"))
    return {
        "gopher_quality": GopherQualityFilter(
            min_doc_words=q.min_words, max_doc_words=q.max_words, min_avg_word_length=q.min_mean_word_length,
            max_avg_word_length=q.max_mean_word_length, max_symbol_word_ratio=q.max_symbol_word_ratio,
            max_bullet_lines_ratio=q.max_bullet_line_fraction, max_ellipsis_lines_ratio=q.max_ellipsis_line_fraction,
            max_non_alpha_words_ratio=q.min_alpha_word_fraction, min_stop_words=q.min_stop_words,
            stop_words=q.stop_words),
        "gopher_repetition": GopherRepetitionFilter(
            dup_line_frac=r.max_duplicate_line_fraction, dup_para_frac=r.max_duplicate_paragraph_fraction,
            dup_line_char_frac=r.max_duplicate_line_char_fraction,
            dup_para_char_frac=r.max_duplicate_paragraph_char_fraction,
            top_n_grams=tuple(sorted(r.max_top_ngram_char_fraction.items())),
            dup_n_grams=tuple(sorted(r.max_duplicate_ngram_char_fraction.items()))),
        "fineweb_quality": FineWebQualityFilter(
            line_punct_thr=f.min_punctuated_line_fraction, short_line_thr=f.max_short_line_fraction,
            short_line_length=f.short_line_chars, char_duplicates_ratio=f.max_duplicate_line_char_fraction,
            new_line_ratio=f.max_newlines_per_word),
        "c4_quality": C4QualityFilter(
            min_num_sentences=c.min_sentences, min_words_per_line=c.min_words_per_line,
            max_word_length=c.max_word_chars),
        "c4_quality_fineweb": C4QualityFilter(  # FineWeb's setting: no terminal-punctuation rule
            min_num_sentences=c.min_sentences, min_words_per_line=c.min_words_per_line,
            max_word_length=c.max_word_chars, filter_no_terminal_punct=False),
    }


def thresher_reason(stage, doc_id: str, text: str) -> str | None:
    out = stage.process_document(Document(id=doc_id, text=text), StageStats())
    return out.reason if isinstance(out, Reject) else None


@pytest.fixture(scope="session")
def decisions(documents) -> dict[str, dict[str, tuple[str | None, str | None]]]:
    """filter -> id -> (thresher's reason, datatrove's reason); None = kept."""
    from datatrove.data import Document as DatatroveDocument

    stages = {name: build_stage(*SETTINGS.get(name, (name, {}))) for name in FILTERS}
    theirs = datatrove_filters(stages)
    result: dict = {name: {} for name in FILTERS}
    for doc_id, text in documents:
        # one document through all filters in turn: datatrove's word cache then splits it once
        for name in FILTERS:
            verdict = theirs[name].filter(DatatroveDocument(text=text, id=doc_id))
            their_reason = None if verdict is True else (verdict[1] if isinstance(verdict, tuple) else "dropped")
            result[name][doc_id] = (thresher_reason(stages[name], doc_id, text), their_reason)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", FILTERS)
def test_decisions_agree_with_datatrove(name, decisions):
    pairs = decisions[name]
    agree = sum((ours is None) == (theirs is None) for ours, theirs in pairs.values())
    both = sum(ours is not None and theirs is not None for ours, theirs in pairs.values())
    either = sum(ours is not None or theirs is not None for ours, theirs in pairs.values())
    print(f"\n{name}: agreement {agree}/{len(pairs)} = {agree / len(pairs):.2%}; "
          f"both drop / either drops {both}/{either} = {both / max(either, 1):.2%}")
    for doc_id, (ours, theirs) in sorted(pairs.items()):
        if (ours is None) != (theirs is None):
            print(f"  {doc_id}: thresher {ours or 'kept'} | datatrove {theirs or 'kept'}")
    assert agree / len(pairs) >= 0.99
    assert either > 0 and both / either >= 0.90
