"""Word splitting: spaCy-English conventions, every script, and the chunk cache."""

import pytest

from filters.words import _token_pattern, split_words, words


@pytest.mark.parametrize("text, expected", [
    ("Hello, world.", ["Hello", ",", "world", "."]),
    ("don't can't I'm John's students'", ["do", "n't", "ca", "n't", "I", "'m", "John", "'s", "students", "'"]),
    ("well-known 10-20 COVID-19 and/or a,b", ["well", "-", "known", "10", "-", "20", "COVID-19", "and", "/", "or",
                                            "a", ",", "b"]),
    ("3.14 1,000 10:30 1/2 10km $5 10%", ["3.14", "1,000", "10:30", "1/2", "10", "km", "$", "5", "10", "%"]),
    ("U.S. e.g. Mr. Smith end.Start", ["U.S.", "e.g.", "Mr.", "Smith", "end", ".", "Start"]),
    ("see http://x.org/a-b?c=d. or a@b.com!", ["see", "http://x.org/a-b?c=d", ".", "or", "a@b.com", "!"]),
    ('"(quoted)" -- wait... #tag ©2019', ['"', "(", "quoted", ")", '"', "--", "wait", "...", "#", "tag", "©", "2019"]),
    ("Привет, мир! Ελλάδα-Κύπρος", ["Привет", ",", "мир", "!", "Ελλάδα", "-", "Κύπρος"]),
    ("你好，世界。", ["你好，世界", "。"]),  # no spaces: one word per run, as spaCy's blank English
    ("", []),
    (" \n\t ", []),
])
def test_words_follow_spacy_english_conventions(text, expected):
    assert list(words(text)) == expected


def test_chunk_cache_gives_the_same_words_as_one_pass():
    text = " ".join(["It's 10km (6 miles) -- see www.example.com/a. Done!"] * 3)
    assert split_words(text) == split_words(text) == list(words(text)) == _token_pattern().findall(text)
    assert len(words(text)) == 3 * 14
