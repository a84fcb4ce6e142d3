"""FineWeb's own quality rules (Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for
the Finest Text Data at Scale", the custom heuristic filters applied after the C4 rules).

A document is dropped when too few of its lines end in punctuation, when too many of its lines
are short (at most 30 characters), when too many of its characters sit in duplicated lines,
and (a rule of datatrove's implementation) when it has more than 0.3 newlines per word, i.e.
is mostly a list. The thresholds are those of datatrove's `FineWebQualityFilter`, the code
that built FineWeb: 0.12, 0.67, 0.01 and 0.3. Lines are the non-blank lines, measured as
written (a line ends in punctuation when its last character, trailing spaces included, has the
Unicode Sentence_Terminal property); duplicated-line characters are over the document's
characters without newlines; words are `filters.words.words`.

`fineweb_quality_v2` applies the same rules to hard-wrapped text unwrapped into paragraphs
(`filters.layout.unwrap`) and measures lines without their trailing whitespace (WikiText ends
every line with a space, which hides the final `.` from `fineweb_quality`). A new name, as
`fineweb_quality` keeps datatrove's decisions.

    - fineweb_quality: {max_short_line_fraction: 0.67, write_scores: true}
    - fineweb_quality_v2: {}
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from filters.layout import unwrap
from filters.scored import Score, ScoredFilter, ScoredParams, above, below, ratio
from filters.text import duplicates, terminal_punctuation
from filters.words import words
from pipeline.stage import register


@register
class FineWebQuality(ScoredFilter):
    """FineWeb rules: punctuated lines, short lines, duplicated-line characters, list-likeness."""

    name = "fineweb_quality"

    class Params(ScoredParams):
        min_punctuated_line_fraction: float | None = Field(0.12, ge=0, le=1, description="lines ending "
                                                           "in sentence-final punctuation; fewer drop")
        max_short_line_fraction: float | None = Field(0.67, ge=0, le=1)
        short_line_chars: int = Field(30, gt=0, description="a line of at most this many characters is short")
        max_duplicate_line_char_fraction: float | None = Field(0.01, ge=0, le=1)
        max_newlines_per_word: float | None = Field(0.3, ge=0)

    def scores(self, text: str) -> Iterator[Score]:
        p = self.params
        lines = self.lines_of(text)
        yield "lines", len(lines), None if lines else "empty"
        punctuated = ratio(sum(line.endswith(terminal_punctuation()) for line in lines), len(lines))
        yield "punctuated_line_fraction", punctuated, below(
            punctuated, p.min_punctuated_line_fraction, "too_few_punctuated_lines")
        short = ratio(sum(len(line) <= p.short_line_chars for line in lines), len(lines))
        yield "short_line_fraction", short, above(short, p.max_short_line_fraction, "too_many_short_lines")
        duplicated = ratio(duplicates(lines)[1], len(text) - text.count("\n"))
        yield "duplicate_line_char_fraction", duplicated, above(
            duplicated, p.max_duplicate_line_char_fraction, "too_many_duplicate_line_chars")
        newlines = ratio(text.count("\n"), len(words(text)))
        yield "newlines_per_word", newlines, above(newlines, p.max_newlines_per_word, "too_many_newlines")

    def lines_of(self, text: str) -> list[str]:
        return [line for line in text.split("\n") if line.strip()]


@register
class FineWebQualityV2(FineWebQuality):
    """fineweb_quality on paragraphs (hard wraps undone), lines measured without trailing spaces."""

    name = "fineweb_quality_v2"

    def scores(self, text: str) -> Iterator[Score]:
        return super().scores(unwrap(text))

    def lines_of(self, text: str) -> list[str]:
        return [line.rstrip() for line in super().lines_of(text)]
