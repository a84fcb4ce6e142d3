"""C4's cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer", Section 2.2, the Colossal Clean Crawled Corpus), as the
`c4_quality` stage.

The paper keeps only lines that end in a terminal punctuation mark (a period, exclamation
mark, question mark or end quotation mark), only lines with enough words, drops lines with the
word "javascript", and drops pages with too few sentences, pages with "lorem ipsum" and pages
with a curly bracket. The reference code (TensorFlow Datasets' `c4_utils`, which datatrove's
`C4QualityFilter` follows) also removes citation markers (`[1]`, `[edit]`, `[citation
needed]`), lines with a word over 1,000 characters and lines about cookies or terms of use,
and applies the page rules to the lines that survive the line rules, counting sentences in
kept lines only; so does this stage. The defaults are datatrove's (at least 3 words per line,
at least 5 sentences per page). Lines are split with `str.splitlines` and stripped; words per
line are whitespace-separated; sentences are counted with `filters.text.sentence_count` (a
sentence ends at `.`, `!`, `?` or another sentence-final character followed by a word; `U.S.`,
`3.14` and `...` end none). A kept document's `text` is its cleaned text; the lines removed
per rule are counted in the stage's stats (`lines_removed.no_terminal_punctuation`, ...).
`end_punctuation: null` turns the terminal-punctuation rule off, as FineWeb did with C4's rules
(it removed the most tokens for the least gain in their ablations; in thresher's,
configs/ablate-filters.yaml, it costs the most perplexity on clean web text of every step).

`c4_quality_v2` applies the same rules to paragraphs: hard-wrapped text (newswire, e-mail,
plain-text pages, whose lines break inside sentences) is unwrapped first
(`filters.layout.unwrap`), so a wrapped line is not removed as a fragment, and the cleaned
text is the kept paragraphs. Text that is not hard-wrapped is judged as by `c4_quality`. It is
a new name because `c4_quality` keeps datatrove's decisions, and some real web pages are
hard-wrapped (the README's heuristic filters section has the numbers).

    - c4_quality: {min_sentences: 5, min_words_per_line: 3}
    - c4_quality_v2: {}    # text that may be hard-wrapped
"""

from __future__ import annotations

import functools
import re
from collections import Counter

from pydantic import Field, field_validator

from filters.layout import unwrap
from filters.text import sentence_count
from pipeline.record import Document
from pipeline.stage import DocumentStage, Reject, StageParams, register
from pipeline.stats import StageStats

POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
CITATIONS = r"\[\d*\]|\[edit\]|\[citation needed\]"


@register
class C4Quality(DocumentStage):
    """C4 line cleaning (terminal punctuation, short, javascript, policy lines) and page rules."""

    name = "c4_quality"

    class Params(StageParams):
        min_sentences: int = Field(5, ge=0, description="pages with fewer sentences after cleaning drop")
        min_words_per_line: int = Field(3, ge=0, description="shorter lines are removed")
        max_word_chars: int | None = Field(1000, gt=0, description="lines with a longer word are removed")
        end_punctuation: str | None = Field(
            ".?!\"'", description="a kept line ends with one of these (null: no such rule, as FineWeb's use of C4's "
                                  "rules and datatrove's filter_no_terminal_punct=False)")
        citation_pattern: str | None = Field(CITATIONS, description="regex of markers removed from lines")
        line_drop_words: list[str] = Field(["javascript"], description="lines containing these are removed")
        policy_phrases: list[str] = Field(list(POLICY_PHRASES), description="lines containing these are removed")
        drop_lorem_ipsum: bool = Field(True, description="drop pages with 'lorem ipsum' in a kept line")
        drop_curly_bracket: bool = Field(True, description="drop pages with '{' in a kept line")

        @field_validator("citation_pattern")
        @classmethod
        def _compiles(cls, value: str | None) -> str | None:
            if value is not None:
                try:
                    re.compile(value)
                except re.error as e:
                    raise ValueError(f"not a valid regular expression: {e}") from None
            return value

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        kept, removed, page_reason = self.clean(doc.text or "")
        for rule, count in removed.items():
            stats.count(f"lines_removed.{rule}", count)
        if page_reason is not None:
            return self.reject(page_reason)
        if not _has_sentences(kept, self.params.min_sentences):
            return self.reject("too_few_sentences")
        return doc.replace(text="\n".join(kept).strip())

    def clean(self, text: str) -> tuple[list[str], Counter, str | None]:
        """(kept lines, removed lines per rule, page-dropping reason or None)."""
        p = self.params
        citations = _compiled(p.citation_pattern) if p.citation_pattern else None
        drop_words, policy = _any_of(tuple(p.line_drop_words)), _any_of(tuple(p.policy_phrases))
        ends = None if p.end_punctuation is None else tuple(p.end_punctuation)
        kept, removed = [], Counter()
        for line in self.lines_of(text):
            line = line.strip()
            if p.max_word_chars is not None and len(line) > p.max_word_chars and max(
                    map(len, line.split())) > p.max_word_chars:
                removed["too_long_word"] += 1
                continue
            if citations is not None:
                line = citations.sub("", line)
            if ends is not None and (not line.endswith(ends) or line.endswith("...")):
                removed["no_terminal_punctuation"] += 1
                continue
            if len(line.split()) < p.min_words_per_line:
                removed["too_few_words"] += 1
                continue
            lower = line.lower()
            if p.drop_lorem_ipsum and "lorem ipsum" in lower:
                return kept, removed, "contains_lorem_ipsum"
            if drop_words is not None and drop_words.search(lower):
                removed["drop_word"] += 1
                continue
            if p.drop_curly_bracket and "{" in line:
                return kept, removed, "contains_curly_bracket"
            if policy is not None and policy.search(lower):
                removed["policy"] += 1
                continue
            kept.append(line)
        return kept, removed, None

    def lines_of(self, text: str) -> list[str]:
        return text.splitlines()


@register
class C4QualityV2(C4Quality):
    """c4_quality on paragraphs: the lines of hard-wrapped text are joined before judging."""

    name = "c4_quality_v2"

    def lines_of(self, text: str) -> list[str]:
        return unwrap(text).splitlines()


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


@functools.lru_cache(maxsize=16)
def _any_of(phrases: tuple[str, ...]) -> re.Pattern | None:
    """A pattern matching any of `phrases` (lowercased, literal), or None for no phrases."""
    return re.compile("|".join(re.escape(p.lower()) for p in phrases)) if phrases else None


def _has_sentences(lines: list[str], minimum: int) -> bool:
    """Whether `lines` hold at least `minimum` sentences (stops counting once they do)."""
    total = 0
    for line in lines:
        if total >= minimum:
            break
        total += sentence_count(line)
    return total >= minimum
