"""Layout that the line- and word-based rules should not judge: hard wraps and WikiText's
markup, undone before the `*_v2` filters measure a text.

The published rules (C4, Gopher, FineWeb) were written for extracted web pages, where a line is
a paragraph, a heading or a list item. Hard-wrapped text (newswire, e-mail, plain-text pages:
lines broken inside sentences at a fixed width) breaks that premise: every wrapped line looks
like a fragment without terminal punctuation. `unwrap` detects such text (`wrap_width`) and
joins the lines of each paragraph; text that is not hard-wrapped comes back unchanged, so the
rules decide on it as before. `untokenize_wikitext` undoes the WikiText release's ` @-@ `,
` @,@ `, ` @.@ `, `= Heading =` markers and `<unk>`, which would otherwise count as extra
non-alphabetic words.

    from filters.layout import unwrap
    unwrap("The central bank said on Monday that it would keep\nits key interest rate unchanged "
           "for the rest of\nthe year, as inflation had slowed in each of the\nlast six months.")
    # -> 'The central bank said on Monday that it would keep its key ... last six months.'
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from itertools import pairwise

from filters.text import terminal_punctuation

# A hard-wrapped text is wrapped at a width in this range (news wires and mail wrap at 60-80
# columns, terminals at 80); web paragraphs run to hundreds of characters.
MIN_WRAP_WIDTH, MAX_WRAP_WIDTH = 40, 100
MIN_BREAKS = 3  # line breaks inside paragraphs needed as evidence (shorter texts are left alone)
# Of those breaks, at least this share must be ones a wrapping program makes: the next line's
# first word did not fit, the line ends inside a sentence, the next line continues in lowercase.
MIN_FULL_BREAKS, MIN_MID_SENTENCE_BREAKS, MIN_LOWERCASE_BREAKS = 0.5, 0.5, 0.2
LONG_LINE_FACTOR = 1.25  # a hard-wrapped text has no line this much longer than its wrap width
# On ../shared/data these flag 98.9% of the Reuters-21578 stories of 5 sentences or more (the rest
# are mostly tables) and 7 of the 1,482 extracted web pages, all plain-text or preformatted
# pages wrapped at 60-90 columns; the lowercase share is what tells wrapped prose from a list of
# similar-length titles.


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


@functools.cache
def _sentence_ends() -> tuple[str, ...]:
    return (*terminal_punctuation(), '"', "'", "”", "’", ")")


def _is_full(line: str, next_line: str, width: int) -> bool:
    """Whether `next_line`'s first word would not have fit at the end of `line`."""
    return len(line) + 1 + len(next_line.split(None, 1)[0]) > width


def wrap_width(text: str) -> int | None:
    """The width `text` is hard-wrapped at, or None when it is not hard-wrapped.

    The width is the 90th percentile of the line lengths; the text is hard-wrapped when no
    line is much longer, and when most breaks between lines of the body's indentation look
    like a wrapping program's (see the thresholds above)."""
    return _wrap_width(_right_stripped_lines(text))


def _right_stripped_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.split("\n")]


def _wrap_width(lines: list[str]) -> int | None:
    text_lines = [line for line in lines if line]
    if len(text_lines) <= MIN_BREAKS:
        return None
    lengths = sorted(map(len, text_lines))
    width = lengths[int(0.9 * (len(lengths) - 1))]
    if not MIN_WRAP_WIDTH <= width <= MAX_WRAP_WIDTH or lengths[-1] > LONG_LINE_FACTOR * width:
        return None
    body = _body_indent(text_lines)
    breaks = [(a, b) for a, b in pairwise(lines) if a and b and _indent(b) <= body]
    if len(breaks) < MIN_BREAKS:
        return None
    full = sum(_is_full(a, b, width) for a, b in breaks)
    mid_sentence = sum(not a.endswith(_sentence_ends()) for a, _ in breaks)
    lowercase = sum(b.lstrip()[0].islower() for _, b in breaks)
    n = len(breaks)
    if full < MIN_FULL_BREAKS * n or mid_sentence < MIN_MID_SENTENCE_BREAKS * n or lowercase < MIN_LOWERCASE_BREAKS * n:
        return None
    return width


def _body_indent(text_lines: list[str]) -> int:
    """The most common indentation: that of the lines inside paragraphs (a paragraph's first
    line may be indented further)."""
    return Counter(map(_indent, text_lines)).most_common(1)[0][0]


@functools.lru_cache(maxsize=8)
def unwrap(text: str) -> str:
    """`text` with the line breaks inside its paragraphs replaced by one space when it is
    hard-wrapped (`wrap_width`), else `text` unchanged. A break stays where the next line is
    blank or indented beyond the body (a new paragraph, a table row), and where a line ends a
    sentence although the next word would have fit (a paragraph's last line). Cached for the
    last few texts, as the `*_v2` filters chained in one process unwrap a document once."""
    lines = _right_stripped_lines(text)
    width = _wrap_width(lines)
    if width is None:
        return text
    body = _body_indent([line for line in lines if line])
    out = [lines[0]]
    for previous, line in pairwise(lines):
        if previous and line and _indent(line) <= body and (
                not previous.endswith(_sentence_ends()) or _is_full(previous, line, width)):
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


_WIKITEXT_JOINERS = re.compile(r" @([-,.])@ ")
_WIKITEXT_HEADING = re.compile(r"^ ?(?:= )+(.*?)(?: =)+ ?$", re.MULTILINE)


def untokenize_wikitext(text: str) -> str:
    """`text` with the WikiText release's markup undone: ` @-@ `, ` @,@ `, ` @.@ ` join their
    neighbours again (`well-known`, `1,000`, `3.5`), headings lose their `=` markers
    (` = = History = = ` -> `History`) and the unknown-word token `<unk>` becomes one word
    (`unk`). Text without them comes back unchanged. Space-separated punctuation
    (`word , word`) needs nothing: `filters.words` splits `word,` the same way."""
    if "@ " in text:
        text = _WIKITEXT_JOINERS.sub(r"\1", text)
    if "= " in text:
        text = _WIKITEXT_HEADING.sub(r"\1", text)
    return text.replace("<unk>", "unk") if "<unk>" in text else text
