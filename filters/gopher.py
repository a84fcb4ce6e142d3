"""Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods,
Analysis & Insights from Training Gopher", Appendix A, MassiveWeb quality filters and
repetition removal, Table A1), as two filters.

`gopher_quality` (the paper's rules): keep documents of 50 to 100,000 words whose mean word
length is 3 to 10 characters; drop those with more than 0.1 hash symbols or ellipses per word,
with more than 90% of lines starting with a bullet point or more than 30% ending with an
ellipsis; require that 80% of words contain an alphabetic character and that at least two of
the stop words the, be, to, of, and, that, have, with occur.

`gopher_repetition`: drop documents whose fraction of duplicate lines or paragraphs exceeds 0.3,
whose characters in duplicate lines or paragraphs exceed 0.2, whose most frequent 2-, 3-, 4-gram
covers more than 0.20, 0.18, 0.16 of the characters, or whose duplicated 5- to 10-grams cover
more than 0.15 down to 0.10 of them (Table A1).

Conventions, shared with datatrove's implementation so that decisions agree (see
tests/filters/test_parity_datatrove.py): words are `filters.words.words`, punctuation tokens
included; the word count and mean length use words with a letter, digit or mark; symbol and
alphabetic ratios are over all words; stop words match exactly (lowercase). A duplicate line,
paragraph or n-gram is one equal to an earlier one (duplicated n-grams are counted left to
right without overlap); the most frequent n-gram counts even when it occurs once (so a tiny
document fails it; `gopher_quality` drops those anyway); character fractions are over the
document's characters. Lines are the non-empty text between newlines, paragraphs the text
between blank lines.

`gopher_quality_v2` and `gopher_repetition_v2` judge text as written (`filters.layout`): their
line rules see hard-wrapped text unwrapped into paragraphs, their word rules see WikiText's
markup undone (` @-@ `, ` @,@ `, ` @.@ `, `= Heading =`, `<unk>`), and for
`gopher_repetition_v2` a line of whitespace is never a duplicate line (it separates
paragraphs). New names, as the old ones keep datatrove's decisions.

    - gopher_repetition: {}
    - gopher_quality: {min_words: 50, write_scores: true}
    - gopher_repetition_v2: {}     # text that may be hard-wrapped, or WikiText
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import filterfalse

import numpy as np
from pydantic import Field, field_validator

from filters.layout import untokenize_wikitext, unwrap
from filters.scored import Score, ScoredFilter, ScoredParams, above, below, ratio
from filters.text import (
    duplicate_ngram_chars,
    duplicates,
    is_symbol_word,
    lines,
    ngram_ids,
    paragraphs,
    top_ngram_chars,
    window_chars,
    word_ids,
)
from filters.words import words
from pipeline.stage import register

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


@register
class GopherQuality(ScoredFilter):
    """Gopher quality rules: word count and length, symbols, bullets, alphabetic and stop words."""

    name = "gopher_quality"

    class Params(ScoredParams):
        min_words: int | None = Field(50, ge=0, description="fewer words (with a letter/digit) drop")
        max_words: int | None = Field(100_000, gt=0, description="more words drop")
        min_mean_word_length: float | None = Field(3, ge=0, description="in characters")
        max_mean_word_length: float | None = Field(10, gt=0, description="in characters")
        max_symbol_word_ratio: float | None = Field(0.1, ge=0, description="'#' or ellipses per word")
        max_bullet_line_fraction: float | None = Field(0.9, ge=0, le=1)
        max_ellipsis_line_fraction: float | None = Field(0.3, ge=0, le=1)
        min_alpha_word_fraction: float | None = Field(0.8, ge=0, le=1, description="words with a letter")
        min_stop_words: int | None = Field(2, ge=0, description="distinct stop words required")
        stop_words: list[str] = Field(list(STOP_WORDS), description="Gopher's eight English stop words")
        bullets: str = Field("•-", min_length=1, description="a line starting with one of these is a bullet line")

    def scores(self, text: str) -> Iterator[Score]:
        p = self.params
        tokens = self.words_of(text)
        n_tokens, n_words, n_chars, n_alpha = _word_counts(tokens)
        yield "words", n_words, below(n_words, p.min_words, "too_few_words") or above(
            n_words, p.max_words, "too_many_words")
        mean = ratio(n_chars, n_words)
        yield "mean_word_length", mean, below(mean, p.min_mean_word_length, "mean_word_length_too_short") or above(
            mean, p.max_mean_word_length, "mean_word_length_too_long")
        hashes = ratio(text.count("#"), n_tokens)
        yield "hash_word_ratio", hashes, above(hashes, p.max_symbol_word_ratio, "too_many_hashes")
        ellipses = ratio(text.count("...") + text.count("…"), n_tokens)
        yield "ellipsis_word_ratio", ellipses, above(ellipses, p.max_symbol_word_ratio, "too_many_ellipses")
        all_lines = self.lines_of(text)
        bullets = ratio(sum(line.lstrip().startswith(tuple(p.bullets)) for line in all_lines), len(all_lines))
        yield "bullet_line_fraction", bullets, above(bullets, p.max_bullet_line_fraction, "too_many_bullet_lines")
        trailing = ratio(sum(line.rstrip().endswith(("...", "…")) for line in all_lines), len(all_lines))
        yield "ellipsis_line_fraction", trailing, above(
            trailing, p.max_ellipsis_line_fraction, "too_many_ellipsis_lines")
        alpha = ratio(n_alpha, n_tokens)
        yield "alpha_word_fraction", alpha, below(alpha, p.min_alpha_word_fraction, "too_few_alpha_words")
        n_stop = len(set(p.stop_words).intersection(tokens))
        yield "stop_words", n_stop, below(n_stop, p.min_stop_words, "too_few_stop_words")

    def words_of(self, text: str) -> tuple[str, ...]:
        return words(text)

    def lines_of(self, text: str) -> list[str]:
        return lines(text)


def _word_counts(tokens: tuple[str, ...]) -> tuple[int, int, int, int]:
    """(all tokens, words with a letter/digit/mark, their characters, tokens with a letter).
    Purely alphabetic tokens (most) are counted in bulk; each other distinct token is
    inspected once."""
    n_alpha = n_words = sum(map(str.isalpha, tokens))
    n_chars = sum(map(len, filter(str.isalpha, tokens)))
    for token, count in Counter(filterfalse(str.isalpha, tokens)).items():
        if not is_symbol_word(token):
            n_words, n_chars = n_words + count, n_chars + count * len(token)
            n_alpha += count if any(map(str.isalpha, token)) else 0
    return len(tokens), n_words, n_chars, n_alpha


@register
class GopherRepetition(ScoredFilter):
    """Gopher repetition rules: duplicate lines/paragraphs, frequent and duplicated n-grams."""

    name = "gopher_repetition"

    class Params(ScoredParams):
        max_duplicate_line_fraction: float | None = Field(0.3, ge=0, le=1)
        max_duplicate_paragraph_fraction: float | None = Field(0.3, ge=0, le=1)
        max_duplicate_line_char_fraction: float | None = Field(0.2, ge=0, le=1)
        max_duplicate_paragraph_char_fraction: float | None = Field(0.2, ge=0, le=1)
        max_top_ngram_char_fraction: dict[int, float] = Field(
            {2: 0.20, 3: 0.18, 4: 0.16}, description="n -> limit on the chars of the most frequent n-gram")
        max_duplicate_ngram_char_fraction: dict[int, float] = Field(
            {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
            description="n -> limit on the chars of n-grams that repeat an earlier one")

        @field_validator("max_top_ngram_char_fraction", "max_duplicate_ngram_char_fraction")
        @classmethod
        def _valid_ngrams(cls, limits: dict[int, float]) -> dict[int, float]:
            if any(n < 1 for n in limits) or any(not 0 <= v <= 1 for v in limits.values()):
                raise ValueError("keys are n-gram sizes (>= 1), values fractions in [0, 1]")
            return limits

    def scores(self, text: str) -> Iterator[Score]:
        p = self.params
        yield "chars", len(text), None if text.strip() else "empty"
        n_chars = max(len(text), 1)
        for unit, parts in (("paragraph", paragraphs(text)), ("line", self.lines_of(text))):
            dup_count, dup_chars = self.duplicates_of(parts)
            fraction = ratio(dup_count, len(parts))
            limit = getattr(p, f"max_duplicate_{unit}_fraction")
            yield f"duplicate_{unit}_fraction", fraction, above(
                fraction, limit, f"duplicate_{unit}_fraction_too_high")
            limit = getattr(p, f"max_duplicate_{unit}_char_fraction")
            yield f"duplicate_{unit}_char_fraction", dup_chars / n_chars, above(
                dup_chars / n_chars, limit, f"duplicate_{unit}_chars_too_high")
        yield from self._ngram_scores(self.words_of(text), n_chars)

    def words_of(self, text: str) -> tuple[str, ...]:
        return words(text)

    def lines_of(self, text: str) -> list[str]:
        return lines(text)

    def duplicates_of(self, parts: list[str]) -> tuple[int, int]:
        return duplicates(parts)

    def _ngram_scores(self, tokens: tuple[str, ...], n_chars: int) -> Iterator[Score]:
        p = self.params
        tops, dups = p.max_top_ngram_char_fraction, p.max_duplicate_ngram_char_fraction
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        cumulative = np.concatenate(([0], np.cumsum(lengths)))
        # n-gram ids are built for n = 1, 2, ... in turn, so a document failing early stops early
        for n, grams in ngram_ids(word_ids(tokens), max([1, *tops, *dups])):
            if n in tops:
                value = top_ngram_chars(grams, window_chars(cumulative, n), n) / n_chars
                yield f"top_{n}gram_char_fraction", value, above(value, tops[n], f"top_{n}gram_chars_too_high")
            if n in dups:
                value = duplicate_ngram_chars(grams, window_chars(cumulative, n), n) / n_chars
                yield f"duplicate_{n}gram_char_fraction", value, above(
                    value, dups[n], f"duplicate_{n}gram_chars_too_high")


class AsWritten:
    """The v2 Gopher rules' view of a text: WikiText markup undone for words, hard-wrapped
    paragraphs rejoined for lines."""

    def words_of(self, text: str) -> tuple[str, ...]:
        return words(untokenize_wikitext(text))

    def lines_of(self, text: str) -> list[str]:
        return lines(unwrap(text))


@register
class GopherQualityV2(AsWritten, GopherQuality):
    """gopher_quality on text as written: hard wraps and WikiText markup undone."""

    name = "gopher_quality_v2"


@register
class GopherRepetitionV2(AsWritten, GopherRepetition):
    """gopher_repetition on text as written (hard wraps, WikiText markup undone); blank lines never repeat."""

    name = "gopher_repetition_v2"

    def duplicates_of(self, parts: list[str]) -> tuple[int, int]:
        return duplicates(parts, skip_blank=True)
