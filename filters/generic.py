"""Small generic rules: text length, language score, keep/drop lists and ranges on any field.

    - min_chars: {min_chars: 200}
    - max_chars: {max_chars: 1000000}
    - min_language_score: {min_score: 0.65}
    - field_values: {field: domain, keep: [financial, general]}
    - field_values: {field: metadata.charset, drop: ["cp1252 (detected)"]}
    - field_range: {field: metadata.gopher_quality.alpha_word_fraction, min: 0.85}

`field` is a document column (`source`, `domain`, `language`, `url`, ...) or `metadata.KEY`
(dotted for nested keys, e.g. the scores a filter kept with `write_scores: true`, so a
threshold can be changed without recomputing them); `field_values` compares values as strings,
a missing field as null.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from pipeline.record import CORE_COLUMNS, Document
from pipeline.stage import Filter, StageParams, register


@register
class MinChars(Filter):
    """Drop documents with fewer characters than `min_chars`."""

    name = "min_chars"

    class Params(StageParams):
        min_chars: int = Field(1, ge=0, description="shorter texts drop")

    def filter(self, doc: Document) -> str | None:
        return "too_few_chars" if len(doc.text or "") < self.params.min_chars else None


@register
class MaxChars(Filter):
    """Drop documents with more characters than `max_chars`."""

    name = "max_chars"

    class Params(StageParams):
        max_chars: int = Field(1_000_000, gt=0, description="longer texts drop")

    def filter(self, doc: Document) -> str | None:
        return "too_many_chars" if len(doc.text or "") > self.params.max_chars else None


@register
class MinLanguageScore(Filter):
    """Drop documents whose `language_score` is under `min_score` (or missing: run `language`)."""

    name = "min_language_score"

    class Params(StageParams):
        min_score: float = Field(0.65, ge=0, le=1, description="lower scores drop")

    def filter(self, doc: Document) -> str | None:
        if doc.language_score is None:
            return "no_language_score"
        return "language_score_too_low" if doc.language_score < self.params.min_score else None


@register
class FieldValues(Filter):
    """Keep only documents whose field is in `keep`, or drop those whose field is in `drop`."""

    name = "field_values"

    class Params(StageParams):
        field: str = Field(description="a document column, or metadata.KEY")
        keep: list[str | None] | None = Field(None, description="values to keep (others drop)")
        drop: list[str | None] | None = Field(None, description="values to drop")

        @model_validator(mode="after")
        def _one_list(self):
            if (self.keep is None) == (self.drop is None):
                raise ValueError("give exactly one of keep or drop")
            _check_field(self.field)
            return self

    def filter(self, doc: Document) -> str | None:
        value = _as_text(field_value(doc, self.params.field))
        if self.params.keep is not None:
            return None if value in self.params.keep else "value_not_kept"
        return "value_dropped" if value in self.params.drop else None


@register
class FieldRange(Filter):
    """Drop documents whose numeric field is under `min` or over `max` (or missing)."""

    name = "field_range"

    class Params(StageParams):
        field: str = Field(description="a numeric document column, or metadata.KEY[.KEY...]")
        min: float | None = Field(None, description="lower values drop")
        max: float | None = Field(None, description="higher values drop")

        @model_validator(mode="after")
        def _bounds(self):
            if self.min is None and self.max is None:
                raise ValueError("give min, max or both")
            _check_field(self.field)
            return self

    def filter(self, doc: Document) -> str | None:
        value = field_value(doc, self.params.field)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "value_missing"
        if self.params.min is not None and value < self.params.min:
            return "value_below_min"
        return "value_above_max" if self.params.max is not None and value > self.params.max else None


def _check_field(field: str) -> None:
    if not field.startswith("metadata.") and field not in CORE_COLUMNS:
        raise ValueError(f"field {field!r} is not a document column ({', '.join(CORE_COLUMNS)}) or metadata.KEY")


def field_value(doc: Document, field: str) -> Any:
    """The value of a document column or of a (nested) metadata key; None when missing."""
    if not field.startswith("metadata."):
        return getattr(doc, field)
    value: Any = doc.metadata
    for key in field.removeprefix("metadata.").split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)
