"""Word splitting for the heuristic filters: fast, and close to what the published rules count.

The rules (Gopher, C4, FineWeb) count "words", and datatrove, which produced FineWeb, counts
spaCy's English tokens: whitespace-separated chunks with punctuation peeled off as tokens of
their own (`Hello, world.` is four words, two of them alphabetic), hyphens between letters
split off (`well-known` -> `well - known`), clitics split (`don't` -> `do n't`, `John's` ->
`John 's`), while URLs, host names, e-mail addresses, numbers (`3.14`, `1,000`, `10:30`) and
abbreviations (`U.S.`, `e.g.`, `Mr.`) stay whole. The ratios the rules threshold (alphabetic
words / words, symbols / words, newlines / words) depend on these conventions, so `words()`
reproduces them with one regular expression instead of splitting on whitespace (which would
count `Hello,` as one alphabetic word and move every ratio by the ~15% of tokens that are
punctuation), and instead of calling spaCy (about 10x slower). The pattern runs once per
distinct chunk (a cache, as spaCy's tokenizer keeps one); purely alphabetic chunks skip it.

Language-aware as far as the rules need: letters, digits and combining marks of every script
make words (Cyrillic, Greek, Devanagari, ...); scripts written without spaces (Chinese,
Japanese, Thai) come out as one word per space-separated run, as with spaCy's blank English
tokenizer, so word-count rules say little about them; the recipes identify the language first.
Left out: most of spaCy's ~1,300 special cases (`cannot`, `gonna`, apostrophe-less `dont`,
emoticons); on the parity set 57% of documents split exactly like spaCy and the rest differ
by 0.1% of tokens (`tests/filters/test_parity_datatrove.py` measures the filters' decisions).

    from filters.words import words
    words("Hello, world.")   # ('Hello', ',', 'world', '.')
"""

from __future__ import annotations

import functools
import re
import unicodedata

_LOWER, _UPPER, _LETTER, _ALNUM = "a-zß-öø-ÿа-яё", "A-ZÀ-ÖØ-ÞА-ЯЁ", r"[^\W\d_]", r"[^\W_]"
_SPECIAL = set("-/.:,<>='’…–—")  # characters with rules of their own in the pattern
_STICKY = set("@\\•¶|~^+")  # punctuation that never splits a word (`@user`, `a|b`, `C:\dir`)
_UNITS = "km|cm|mm|m|kg|mg|g|lb|oz|ft|in|yd|mph|kmh|ha|nm|GB|MB|KB|TB|gb|mb|kb|am|pm|K|M|G|T"
_ABBREVIATIONS = (r"[eE]\.[gG]|[iI]\.[eE]|[ap]\.m|Ph\.D|Mr|Mrs|Ms|Dr|Prof|Gen|Gov|Rev|Sen|Rep|St|Mt|Jr|Sr|Inc|"
                  r"Ltd|Co|Corp|Bros|vs|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec|[a-z]")


def _char_classes() -> tuple[str, str, str]:
    """Regex class contents (word chars, edge punctuation, isolated symbols) from the Unicode
    database: word chars are letters, digits, marks, format and sticky chars; edge punctuation
    (quotes, brackets, `,;!?`, currency) is split off at a word's start or end but kept inside it
    (`f(x`, `a;b`); other symbols (©, °, ★) are words of their own. Only the Basic Multilingual
    Plane is classified char by char (`re` tests it with a bitmap); beyond it two ranges stand
    for historic scripts and CJK extensions and one for emoji, as `re` scans long lists of
    ranges linearly."""
    word, edge, isolated = [], [], []
    for code in range(0x10000):
        ch = chr(code)
        if ch.isspace() or ch in _SPECIAL:
            continue
        cat = unicodedata.category(ch)
        if cat[0] in "LNMC" or ch in _STICKY or (cat[0] == "S" and cat not in ("Sc", "So") and ch not in "`´"):
            word.append(code)
        elif cat == "So":
            isolated.append(code)
        else:  # the remaining punctuation (P*), currency (Sc) and the quote-like accents
            edge.append(code)
    return (_ranges(word) + "\U00010000-\U0001EFFF\U00020000-\U0003FFFF", _ranges(edge),
            _ranges(isolated) + "\U0001F000-\U0001FAFF")


def _ranges(codes: list[int]) -> str:
    parts, start = [], codes[0]
    for prev, code in zip(codes, codes[1:] + [None]):
        if code != prev + 1:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = code
    return "".join(parts)


def _word_pattern(w: str, e: str) -> str:
    """A word: word chars, joined by what spaCy does not split inside a word, with the few
    characters it leaves on a word's edges (`-foo`, `.NET`, `foo-`, `x=`, `ab%`, `J.`)."""
    x, inside = f"[{w}]", e.replace("\u2013", "").replace("\u2014", "")  # dashes split even inside
    join = "|".join([
        f"[{inside}]",  # f(x  a;b  a"b
        f"['’](?![sS](?!{x}))",  # O'Neil, rock'n'roll; not the clitic 's
        r",(?=\d)|(?<=\d),",  # 1,000 (a,b splits)
        rf"(?<!{_ALNUM})[:<>=/]|[:<>=/](?!{_LETTER})",  # 10:30  1/2  x==y (and/or, http:x split)
        rf"(?<!{_ALNUM})-+|-+(?=[^\w\s-])|(?<={_LETTER})-(?=\d)",  # COVID-19 |---| (well-known, 10-20 split)
        rf"(?<![{_LOWER}.])\.(?!\.)|(?<!\.)\.(?![{_UPPER}.])",  # 3.14 example.com (end.Start, a..b split)
    ])
    head = rf"(?:(?<![^\s{e}<>=:])(?:[-/]|\.(?!\.))+)?"
    tail = rf"(?:[-/=]|(?<!\d)[%$£€¥§])+(?=[\s{e}]|$)|(?<=[{_UPPER}])(?<![{_UPPER}][{_UPPER}])\."
    return rf"{head}{x}+(?:(?!\s)(?:{join})+{x}+)*(?:(?!\s)(?:{tail}))?"


@functools.cache
def _token_pattern() -> re.Pattern:
    """The word pattern, compiled on first use (a few tenths of a second)."""
    w, e, _ = _char_classes()
    x = f"[{w}]"
    return re.compile("|".join([
        r"[A-Za-z]+(?=[\s,]|$)|[,.;!?)\]\"'](?=\s|$)|\d+(?=\s|$)",  # fast paths: most words, punctuation
        rf"(?:https?://|ftp://|www\.)\S*[^\s{e}.]",  # URL, trailing punctuation split off
        rf"(?<!{x})(?=[A-Za-z0-9]+[-.])(?:[A-Za-z0-9-]+\.)+[a-z]{{2,63}}(?:/\S*[^\s{e}.])?(?![\w@-])",  # a-b.com
        r"\.{2,}|…",  # ellipsis
        rf"\d+(?:[.,]\d+)*(?=(?:{_UNITS})(?!{x}))",  # 10km -> 10 km
        # a short run of letters before an apostrophe or a period: a contraction or an abbreviation?
        (rf"(?<!{x})(?=[A-Za-z][A-Za-z.]{{0,7}}['’.])(?:(?:{_ABBREVIATIONS})\.(?![{w}.])"  # Mr.  e.g.  Ph.D.
         rf"|{_LETTER}+?(?=n['’]t(?!{x}))"  # don't -> do n't
         rf"|(?i:i|you|he|she|it|we|they|who|what|that|there)(?=['’](?:m|re|ve|ll|d)(?!{x})))"),  # I'm -> I 'm
        rf"n['’]t(?!{x})|['’](?:[sS]|m|re|ve|ll|d)(?!{x})",  # clitics
        _word_pattern(w, e),
        r"-+|/+|\):|:\)|:-\)|;\)|''",  # dash and slash runs, a few emoticons
        r"\S",  # any other character is a word of its own (©, emoji, a lone quote)
    ]))


_CHUNKS: dict[str, tuple[str, ...]] = {}  # words of recently seen chunks
_MAX_CHUNKS = 200_000


def split_words(text: str) -> list[str]:
    """The words of `text`, uncached (see `words`). The pattern runs on each distinct
    whitespace-separated chunk once (its lookarounds treat a chunk's ends like whitespace, so
    the result equals one pass over the text); purely alphabetic chunks are words as they are."""
    out: list[str] = []
    for chunk in text.split():
        if chunk.isalpha():
            out.append(chunk)
            continue
        found = _CHUNKS.get(chunk)
        if found is None:
            if len(_CHUNKS) >= _MAX_CHUNKS:
                _CHUNKS.clear()
            found = _CHUNKS[chunk] = tuple(_token_pattern().findall(chunk))
        out.extend(found)
    return out


@functools.lru_cache(maxsize=8)
def words(text: str) -> tuple[str, ...]:
    """The words of `text` (see the module docstring). Cached for the last few texts, so
    filters chained in one process split a document once."""
    return tuple(split_words(text))
