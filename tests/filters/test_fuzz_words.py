"""Fuzzed word splitting (hypothesis): `split_words` never raises and never loses or invents a
character.

The splitter (filters/words.py) cuts each whitespace-separated chunk into words with one regular
expression whose last alternative takes any other character as a word of its own, so for every
text its words, concatenated, are the text without its whitespace; no word is empty or holds
whitespace; `words()` (cached) equals `split_words()` (uncached); and `sentence_count` is between
1 and the number of words for a text with words, 0 without.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filters.text import sentence_count
from filters.words import split_words, words
from tests.fuzzing import CI_SETTINGS, Target

# Pieces the pattern has rules for, so that random text reaches them and their edges.
SNIPPETS = ["don't", "John's", "I'm", "U.S.", "e.g.", "Mr.", "Ph.D.", "3.14", "1,000", "10:30", "10km", "COVID-19",
            "well-known", "http://example.com/a.", "www.x.org", "a-b.com/x", "user@mail.com", "...", "…", "—", "–",
            "'", "’", "n't", "--", "//", ":)", "''", "C:\\dir", "@user", "$5", "50%", "©", "★", "😀", "日本語", "x==y",
            ".NET", "J.", "a;b", "f(x", "é", "\u0301", "\u200b", "\ufeff", "ß", "İ"]
SPACES = [" ", "\n", "\t", "\u00a0", "\u2028", "\x1c", "\x85", "\u3000", "\r\n", "\x0b"]
TEXTS = st.lists(st.sampled_from(SNIPPETS) | st.sampled_from(SPACES) | st.text(st.characters(codec="utf-8"),
                                                                               max_size=8), max_size=30).map("".join)


def check_words(text: str) -> None:
    tokens = split_words(text)
    assert all(token and not any(ch.isspace() for ch in token) for token in tokens), tokens
    assert "".join(tokens) == "".join(text.split()), tokens
    assert words(text) == tuple(tokens) == tuple(split_words(text))
    count = sentence_count(text)
    assert (0 < count <= len(tokens)) if tokens else count == 0, (count, tokens)


TARGETS = {"split_words": Target(TEXTS, check_words)}


@CI_SETTINGS
@given(TEXTS)
def test_split_words_keeps_every_character(text):
    check_words(text)
