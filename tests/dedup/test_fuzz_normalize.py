"""Fuzzed dedup normalisation (hypothesis): `normalize` never raises and is idempotent.

For every text and every combination of the four switches, normalising twice gives what
normalising once gives (two near-duplicates normalise to one key, and that key is stable); with
whitespace collapsed, the result has no leading, trailing or doubled space, and without
lowercasing it equals Python's `" ".join(text.split())` (the module's WHITESPACE class claims
exactly str.split()'s whitespace); punctuation stripped leaves no Unicode P*/S* character; digits
to zero leaves no decimal digit but 0; nulls become empty strings.
"""

from __future__ import annotations

import unicodedata

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from dedup.normalize import Normalization, normalize
from tests.fuzzing import CI_SETTINGS, Target

PIECES = ["Profit", "ROSE", "12.5", "pct!", "İ", "ẞ", "Σ", "ς", "٣", "²", "€", "©", "—", "\u00a0", "\u2028", "\x1c",
          "\x85", "\x0b", "\u3000", "\u200b", " ", "\n", "\t", "\r"]
TEXTS = st.lists(st.sampled_from(PIECES) | st.text(st.characters(codec="utf-8"), max_size=8), max_size=20).map("".join)
VALUES = st.tuples(st.lists(st.none() | TEXTS, max_size=4), st.booleans(), st.booleans(), st.booleans(), st.booleans())


def check_normalize(value) -> None:
    texts, lowercase, collapse, punctuation, digits = value
    norm = Normalization(lowercase=lowercase, collapse_whitespace=collapse, strip_punctuation=punctuation,
                         digits_to_zero=digits)
    once = normalize(pa.array(texts, pa.string()), norm)
    assert len(once) == len(texts) and once.null_count == 0
    assert normalize(once, norm).to_pylist() == once.to_pylist(), once.to_pylist()
    for text, out in zip(texts, once.to_pylist()):
        if text is None:
            assert out == ""
        if collapse:
            assert out == out.strip() and "  " not in out, repr(out)
        if collapse and not (lowercase or punctuation or digits) and text is not None:
            assert out == " ".join(text.split()), (text, out)
        if punctuation:
            assert not any(unicodedata.category(ch)[0] in "PS" for ch in out), repr(out)
        if digits:
            assert all(ch == "0" for ch in out if unicodedata.category(ch) == "Nd"), repr(out)


TARGETS = {"dedup_normalize": Target(VALUES, check_normalize)}


@CI_SETTINGS
@given(VALUES)
def test_normalize_is_idempotent(value):
    check_normalize(value)
