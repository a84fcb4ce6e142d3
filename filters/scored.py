"""The base of the threshold filters (Gopher, FineWeb): named scores, each with its threshold.

A `ScoredFilter` yields `(score name, value, reason or None)` lazily, in rule order; the
document is dropped with the first failing rule's reason, and scores after it are not computed.
With `write_scores: true` every score is computed and kept in `metadata[<stage name>]`, so a
threshold can be changed later without recomputing (dolma's "taggers score, configs decide"):
`- field_range: {field: metadata.gopher_quality.alpha_word_fraction, min: 0.85}`.

    class Short(ScoredFilter):
        name = "short"
        class Params(ScoredParams):
            min_chars: int = 10
        def scores(self, text):
            yield "chars", len(text), below(len(text), self.params.min_chars, "too_few_chars")
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from pipeline.record import Document
from pipeline.stage import Filter, Reject, StageParams
from pipeline.stats import StageStats

Score = tuple[str, float, "str | None"]


class ScoredParams(StageParams):
    write_scores: bool = Field(False, description="keep every score in metadata[<stage name>] (costs the "
                               "scores a failed earlier rule would skip)")


def below(value: float, limit: float | None, reason: str) -> str | None:
    """`reason` when a lower limit is set and `value` is under it."""
    return reason if limit is not None and value < limit else None


def above(value: float, limit: float | None, reason: str) -> str | None:
    """`reason` when an upper limit is set and `value` is over it."""
    return reason if limit is not None and value > limit else None


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


class ScoredFilter(Filter):
    """A filter made of thresholds on named scores (see module docstring)."""

    Params = ScoredParams

    def scores(self, text: str) -> Iterator[Score]:
        raise NotImplementedError

    def filter(self, doc: Document) -> str | None:
        for _, _, reason in self.scores(doc.text or ""):
            if reason is not None:
                return reason
        return None

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        if not self.params.write_scores:
            return super().process_document(doc, stats)
        values, failed = {}, None
        for name, value, reason in self.scores(doc.text or ""):
            values[name] = round(float(value), 6)
            failed = failed or reason
        out = doc.replace(metadata={**doc.metadata, self.name: values})
        return out if failed is None else self.reject(failed, out)
