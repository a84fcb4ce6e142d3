"""Hard-wrap detection and unwrapping, and WikiText's markup undone (filters/layout.py), on tiny
texts: newswire-style wrapped paragraphs are joined, tables, lists and web-style text are left
as they are."""

import textwrap

import pytest

from filters.layout import untokenize_wikitext, unwrap, wrap_width
from filters.text import duplicates

FIRST = ("The central bank said on Monday that it would keep its key interest rate unchanged for the rest "
         "of the year, as inflation had slowed in each of the last six months.")
SECOND = ("Economists had expected the decision, but several of them said the bank could cut the rate "
          "early next year if growth stayed weak.")


def newswire(*paragraphs: str, width: int = 65) -> str:
    """Paragraphs wrapped at `width`, each first line indented four spaces, as Reuters does."""
    return "\n".join(textwrap.fill(p, width, initial_indent="    ").removeprefix("    ") if i == 0
                     else textwrap.fill(p, width, initial_indent="    ") for i, p in enumerate(paragraphs))


def test_wrapped_paragraphs_are_joined_and_paragraph_starts_kept():
    text = newswire(FIRST, SECOND) + "\n Reuter"
    assert wrap_width(text) is not None
    assert unwrap(text) == f"{FIRST}\n    {SECOND}\n Reuter"  # the indented line starts a paragraph


def test_blank_lines_separate_paragraphs():
    text = textwrap.fill(FIRST, 50) + "\n\n" + textwrap.fill(SECOND, 50)
    assert unwrap(text) == f"{FIRST}\n\n{SECOND}"


def test_a_short_line_that_ends_a_sentence_ends_its_paragraph():
    # no indentation, no blank line: the break after "months." stays, as "Economists" would have fit
    text = textwrap.fill(FIRST, 50) + "\n" + textwrap.fill(SECOND, 50)
    assert unwrap(text) == f"{FIRST}\n{SECOND}"


def test_a_full_line_that_ends_a_sentence_continues_its_paragraph():
    text = "\n".join(["The company said its sales had risen by eight percent.",
                      "Profits were higher than in any quarter of the last",
                      "decade, the chief executive told the annual meeting of",
                      "shareholders in the city of Frankfurt on Thursday."])
    assert unwrap(text) == " ".join(text.split("\n"))


def test_table_rows_indented_beyond_the_body_stay_lines():
    table = "    Shr 1.25 dlrs vs 1.10 dlrs\n    Net 12.3 mln vs 11.0 mln\n    Revs 100.5 mln vs 90.2 mln"
    text = newswire(FIRST, SECOND) + "\n" + table
    assert unwrap(text) == f"{FIRST}\n    {SECOND}\n{table}"


@pytest.mark.parametrize("text", [
    FIRST + "\n" + SECOND + "\n" + FIRST,  # web text: one paragraph per line
    "\n".join(["Home", "About us", "Our products and services", "Contact", "Privacy policy"]),  # a menu
    "\n".join(f"Chapter {i}: The journey of the explorers across the northern mountains" for i in range(8)),
    textwrap.fill(FIRST, 60),  # three lines: too little evidence
    textwrap.fill(FIRST + " " + SECOND, 30),  # narrower than any wrap width we detect
    textwrap.fill(FIRST + " " + SECOND, 60) + "\n" + FIRST + " " + SECOND,  # one line far longer
    "",
])
def test_text_that_is_not_hard_wrapped_is_unchanged(text):
    assert wrap_width(text) is None
    assert unwrap(text) == text


def test_unwrap_handles_carriage_returns_and_trailing_spaces():
    text = newswire(FIRST, SECOND).replace("\n", "  \r\n")
    assert unwrap(text) == f"{FIRST}\n    {SECOND}"


def test_untokenize_wikitext():
    text = (" = Frank <unk> = \n \n Air Vice Marshal Frank <unk> , a well @-@ known officer , led 1 @,@ 000 men"
            " over 3 @.@ 5 years . \n \n = = Early life = = \n x = 5")
    assert untokenize_wikitext(text) == ("Frank unk\n \n Air Vice Marshal Frank unk , a well-known officer , led "
                                         "1,000 men over 3.5 years . \n \nEarly life\n x = 5")
    assert untokenize_wikitext("e-mail me@example.com, a = b") == "e-mail me@example.com, a = b"


def test_duplicates_can_skip_blank_parts():
    parts = ["a", " ", "b", " ", "a", ""]
    assert duplicates(parts) == (2, 1 + 1)
    assert duplicates(parts, skip_blank=True) == (1, 1)
