"""Lines, paragraphs, sentences, symbols, and the n-gram helpers (checked against brute-force
definitions)."""

import random
from collections import Counter

import numpy as np
import pytest

from filters.text import (
    duplicate_ngram_chars,
    duplicates,
    is_symbol_word,
    lines,
    ngram_ids,
    paragraphs,
    sentence_count,
    terminal_punctuation,
    top_ngram_chars,
    window_chars,
    word_ids,
)


def test_lines_paragraphs_and_duplicates():
    text = "a\n\nb\n  \nb\nc"
    assert lines(text) == ["a", "b", "  ", "b", "c"]  # empty lines are skipped, whitespace ones kept
    assert paragraphs("\n\np1 l1\np1 l2\n\n\np2\n") == ["p1 l1\np1 l2", "p2"]
    assert duplicates(["x", "yy", "x", "yy", "yy"]) == (3, 1 + 2 + 2)


def test_sentence_count():
    assert sentence_count("One. Two! Three? Four") == 4
    assert sentence_count("The U.S. grew 3.14 percent, e.g. in Jan. this year.") == 1
    assert sentence_count('He said "stop." Then he left... and came back.') == 2
    assert sentence_count("") == 0 and sentence_count("no end") == 1


def test_symbols_and_terminal_punctuation():
    assert is_symbol_word("...") and is_symbol_word("©") and is_symbol_word("-")
    assert not is_symbol_word("a-") and not is_symbol_word("3")
    assert {".", "!", "?", "。", "؟", "।"} <= set(terminal_punctuation())
    assert "," not in terminal_punctuation()


def brute_top(tokens, n):
    grams = [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0
    counts = Counter(grams)
    best = max(counts.values())
    first = next(g for g in grams if counts[g] == best)
    return best * len(first)


def brute_duplicate(tokens, n):
    seen, total, i = set(), 0, 0
    while i < len(tokens) - n + 1:
        gram = tuple(tokens[i:i + n])
        if gram in seen:
            total += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return total


@pytest.mark.parametrize("seed", range(20))
def test_ngram_helpers_match_brute_force(seed):
    rng = random.Random(seed)
    vocab = ["a", "bb", "ccc", "the", "of", "x"][: rng.randint(1, 6)]
    tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 60))]
    cumulative = np.concatenate(([0], np.cumsum([len(t) for t in tokens], dtype=np.int64)))
    for n, grams in ngram_ids(word_ids(tokens), 10):
        assert len(grams) == max(len(tokens) - n + 1, 0)
        chars = window_chars(cumulative, n)
        assert top_ngram_chars(grams, chars, n) == brute_top(tokens, n)
        assert duplicate_ngram_chars(grams, chars, n) == brute_duplicate(tokens, n)
