"""Text measures shared by the heuristic filters: lines, paragraphs, sentences, duplicates and
n-grams (words come from `filters.words`).

Lines are the text between newlines and paragraphs the text between blank lines, as the Gopher
paper and datatrove's implementation count them; a sentence ends where spaCy's rule-based
sentencizer (which datatrove's C4 filter uses) ends one; n-gram statistics are exact (integer
ids per distinct n-gram, no hashing) and vectorised with numpy.

    from filters.text import lines, paragraphs, sentence_count
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

import numpy as np

from filters.words import split_words


def lines(text: str) -> list[str]:
    """Lines: the text between newlines, empty ones skipped. A line of spaces or tabs is still
    a line (as in datatrove; such lines repeat in pages whose layout survived extraction)."""
    return [line for line in text.split("\n") if line]


_PARAGRAPH_BREAK = re.compile(r"\n{2,}")


def paragraphs(text: str) -> list[str]:
    """Paragraphs: the text between runs of two or more newlines."""
    return _PARAGRAPH_BREAK.split(text.strip())


def duplicates(parts: list[str], skip_blank: bool = False) -> tuple[int, int]:
    """(number of parts equal to an earlier part, their characters); with `skip_blank`, parts
    of whitespace only never count (they separate text, they do not repeat it)."""
    counted = [part for part in parts if part.strip()] if skip_blank else parts
    counts = Counter(counted)
    return len(counted) - len(counts), sum((c - 1) * len(part) for part, c in counts.items() if c > 1)


@functools.cache
def terminal_punctuation() -> tuple[str, ...]:
    """Characters with the Unicode property Sentence_Terminal (`.` `!` `?` `。` `।` ...)."""
    import regex  # installed with trafilatura (htmldate -> dateparser); only needed here

    codes = "".join(chr(c) for c in range(0x30000) if not 0xD800 <= c < 0xE000)
    return tuple(regex.findall(r"\p{Sentence_Terminal}", codes))


@functools.cache
def _sentence_ends() -> frozenset[str]:
    return frozenset(terminal_punctuation())


def is_punctuation(word: str) -> bool:
    """True when every character is Unicode punctuation (category P*)."""
    return all(unicodedata.category(ch)[0] == "P" for ch in word)


def sentence_count(text: str) -> int:
    """Sentences in `text`: a sentence ends at a sentence-terminal word (`.` `!` `?` ...)
    followed, after any punctuation, by a word that is not punctuation (so `U.S.`, `3.14`,
    `e.g.` and `...` end nothing). Zero for text without words."""
    tokens = split_words(text)  # uncached: C4 counts many short lines
    count, ended, ends = (1 if tokens else 0), False, _sentence_ends()
    for token in tokens:
        if token in ends:
            ended = True
        elif ended and not is_punctuation(token):
            count += 1
            ended = False
    return count


_SYMBOL_CATEGORIES = frozenset("PSC")


def is_symbol_word(word: str) -> bool:
    """True when `word` has no letter, digit or mark (only punctuation, symbols, controls)."""
    return all(unicodedata.category(ch)[0] in _SYMBOL_CATEGORIES for ch in word)


# -- n-grams ----------------------------------------------------------------------------------


def word_ids(tokens: tuple[str, ...] | list[str]) -> np.ndarray:
    """Dense integer ids of `tokens` (equal words, equal ids), in order of first appearance."""
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))


def ngram_ids(ids: np.ndarray, max_n: int):
    """Yield `(n, grams)` for n = 1..max_n, where `grams[i]` is a dense id of the n-gram
    starting at word i (len(ids) - n + 1 of them). Exact, no hashing: each n-gram id comes
    from the pair ((n-1)-gram id, next word id), re-densified with `np.unique`."""
    grams, base = ids, int(ids.max(initial=0)) + 1
    yield 1, grams
    for n in range(2, max_n + 1):
        if len(grams) <= 1:
            grams = grams[:0]
        else:
            pairs = grams[:-1] * base + ids[n - 1:]
            grams = np.unique(pairs, return_inverse=True)[1].reshape(-1).astype(np.int64)
        yield n, grams


def window_chars(lengths_cumsum: np.ndarray, n: int) -> np.ndarray:
    """Characters in the words of each n-gram window, from the cumulative word lengths."""
    return lengths_cumsum[n:] - lengths_cumsum[:-n]


def top_ngram_chars(grams: np.ndarray, chars: np.ndarray, n: int) -> int:
    """Characters covered by the most frequent n-gram, counting every (overlapping)
    occurrence: occurrences x (its words' characters + the n-1 spaces between them). Ties go
    to the n-gram that appears first."""
    if len(grams) == 0:
        return 0
    per_position = np.bincount(grams)[grams]
    first = int(np.argmax(per_position))  # argmax returns the first of equal maxima
    return int(per_position[first]) * (int(chars[first]) + n - 1)


def duplicate_ngram_chars(grams: np.ndarray, chars: np.ndarray, n: int) -> int:
    """Characters in n-grams that repeat an n-gram seen earlier, scanning left to right and
    skipping the n words of each repeat (so overlapping repeats are not counted twice).
    Only n-grams that occur more than once are visited, in Python; the rest is numpy."""
    if len(grams) == 0:
        return 0
    repeated = np.bincount(grams)[grams] > 1
    positions = np.flatnonzero(repeated)
    seen: set[int] = set()
    total, next_free = 0, 0
    for pos, gram in zip(positions.tolist(), grams[positions].tolist()):
        if pos < next_free:
            continue  # inside a repeat already counted
        if gram in seen:
            total += int(chars[pos])
            next_free = pos + n
        else:
            seen.add(gram)
    return total
