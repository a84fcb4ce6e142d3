"""Generic rules: min/max chars, language score, field keep/drop lists."""

import pytest
from pydantic import ValidationError

from filters.generic import (
    FieldRange,
    FieldValues,
    MaxChars,
    MinChars,
    MinLanguageScore,
)
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table


@pytest.mark.parametrize("text, expected", [
    ("", "too_few_chars"), (None, "too_few_chars"), ("   ", "too_few_chars"), ("short", "too_few_chars"),
    ("long enough", None), ("你好世界，这是测试。", None),
])
def test_min_chars(text, expected):
    assert MinChars(MinChars.Params(min_chars=6)).filter(Document(id="d", text=text)) == expected


def test_max_chars():
    stage = MaxChars(MaxChars.Params(max_chars=5))
    assert [stage.filter(Document(id="d", text=t)) for t in ("", "12345", "123456", "Привет!")] == [
        None, None, "too_many_chars", "too_many_chars"]


def test_min_language_score():
    stage = MinLanguageScore(MinLanguageScore.Params(min_score=0.65))
    scores = [None, 0.2, 0.65, 0.99]
    assert [stage.filter(Document(id="d", language_score=s)) for s in scores] == [
        "no_language_score", "language_score_too_low", None, None]


def test_field_values_keep_and_drop():
    docs = [Document(id="a", domain="financial"), Document(id="b", domain="general"), Document(id="c"),
            Document(id="d", metadata={"charset": "utf-8"}), Document(id="e", metadata={"charset": "cp1252"})]
    keep = FieldValues(FieldValues.Params(field="domain", keep=["financial", None]))
    assert [keep.filter(d) for d in docs[:3]] == [None, "value_not_kept", None]
    drop = FieldValues(FieldValues.Params(field="metadata.charset", drop=["cp1252"]))
    assert [drop.filter(d) for d in docs[3:]] == [None, "value_dropped"]
    result = keep.process(documents_to_table(docs[:3], DOCUMENT_SCHEMA))
    assert result.rejected["reason"].to_pylist() == ["field_values.value_not_kept"]


@pytest.mark.parametrize("params, message", [
    ({"field": "domain"}, "exactly one of keep or drop"),
    ({"field": "domain", "keep": ["a"], "drop": ["b"]}, "exactly one of keep or drop"),
    ({"field": "colour", "keep": ["a"]}, "not a document column"),
])
def test_field_values_bad_params(params, message):
    with pytest.raises(ValidationError, match=message):
        FieldValues.Params(**params)


def test_field_range_rethresholds_kept_scores():
    docs = [Document(id=str(v), metadata={"gopher_quality": {"alpha_word_fraction": v}}) for v in (0.7, 0.85, 0.95)]
    docs += [Document(id="none"), Document(id="score", quality_score=0.5)]
    stage = FieldRange(FieldRange.Params(field="metadata.gopher_quality.alpha_word_fraction", min=0.8, max=0.9))
    assert [stage.filter(d) for d in docs[:4]] == ["value_below_min", None, "value_above_max", "value_missing"]
    assert FieldRange(FieldRange.Params(field="quality_score", min=0.6)).filter(docs[4]) == "value_below_min"
    with pytest.raises(ValidationError, match="give min, max or both"):
        FieldRange.Params(field="quality_score")
