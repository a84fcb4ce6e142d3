"""FineWeb quality rules: each rule's decision and reason on tiny documents; fineweb_quality_v2
on hard-wrapped text and trailing spaces, and as v1 elsewhere."""

import textwrap

import pytest

from filters.fineweb import FineWebQuality, FineWebQualityV2
from pipeline.record import Document

PROSE = """The river flooded the lower town twice this winter, and the council has now agreed on new barriers.
Engineers expect the work to take two years and to cost less than the damage of a single flood.
Residents who lost their homes will be offered temporary housing near the old railway station.
A public meeting about the plans will be held in the town hall next Thursday evening."""


def reason(text, **params):
    return FineWebQuality(FineWebQuality.Params(**params)).filter(Document(id="d", text=text))


@pytest.mark.parametrize("text, expected", [
    (PROSE, None),
    (PROSE.replace("\n", " "), None),  # a single line
    ("Привет! Это длинная строка о погоде, о реке и о городском совете, который собрался вчера вечером.", None),
    ("", "empty"),
    (" \n\t\n ", "empty"),
    ("\n".join([f"Menu entry number {i} with a long label and no stop" for i in range(9)] + [PROSE.splitlines()[0]]),
     "too_few_punctuated_lines"),
    ("\n".join(["Short line one.", "Short line two.", "Another short.", PROSE.splitlines()[0]]),
     "too_many_short_lines"),
    ("委员会将于下周开会讨论预算。", "too_many_short_lines"),  # one short line
    (PROSE + "\n" + PROSE.splitlines()[3], "too_many_duplicate_line_chars"),
    ("\n".join(f"Internationalization{i}telecommunications." for i in range(10)), "too_many_newlines"),
])
def test_fineweb_reasons(text, expected):
    assert reason(text) == expected


def test_lines_are_measured_as_written():
    # a trailing space hides the final period, as in datatrove's implementation
    assert reason(PROSE.replace(".\n", ". \n").replace("evening.", "evening. ")) == "too_few_punctuated_lines"
    assert reason(PROSE + "\nOk.", max_short_line_fraction=0.1) == "too_many_short_lines"
    assert reason("Tiny.\nLines.\nHere.", short_line_chars=3, max_newlines_per_word=None) is None


def reason_v2(text, **params):
    return FineWebQualityV2(FineWebQualityV2.Params(**params)).filter(Document(id="d", text=text))


LONG_SENTENCES = [
    "The committee that was formed last autumn to review the town's flood defences, after the river rose above "
    "the old walls for the third time in ten years, has now published a report of more than two hundred pages "
    "that recommends raising the barriers along the entire eastern bank.",
    "Its members, who include engineers from the regional water authority, two local farmers whose fields were "
    "under water for most of the winter and a historian of the town's bridges, spent months walking the banks "
    "and talking to the residents whose homes had been damaged.",
]


def test_v2_measures_paragraphs_of_hard_wrapped_text_and_lines_without_trailing_spaces():
    wrapped = textwrap.fill(" ".join(LONG_SENTENCES), 45)  # one line in twelve ends in punctuation
    assert reason(wrapped) == "too_few_punctuated_lines"
    assert reason_v2(wrapped) is None
    trailing = PROSE.replace(".\n", ". \n") + " "  # WikiText ends every line with a space
    assert reason(trailing) == "too_few_punctuated_lines" and reason_v2(trailing) is None


@pytest.mark.parametrize("text", [
    PROSE, "", " \n\t\n ", "\n".join([f"Menu entry number {i} with a long label and no stop" for i in range(9)]),
    "\n".join(["Short line one.", "Short line two.", "Another short.", PROSE.splitlines()[0]]),
    PROSE + "\n" + PROSE.splitlines()[3],
])
def test_v2_decides_as_v1_on_text_that_is_not_hard_wrapped(text):
    assert reason_v2(text) == reason(text)
