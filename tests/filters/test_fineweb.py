"""FineWeb quality rules: each rule's decision and reason on tiny documents."""

import pytest

from filters.fineweb import FineWebQuality
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
