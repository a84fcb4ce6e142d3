"""C4 cleaning: line rules (removed lines are counted), page rules and their reasons, and the
cleaned text replacing `text`; c4_quality_v2 on hard-wrapped text, and as c4_quality elsewhere."""

import textwrap

import pytest

from filters.c4 import C4Quality, C4QualityV2
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table
from pipeline.stage import Reject
from pipeline.stats import StageStats

SENTENCES = [
    "The museum opened a new wing for modern art last spring.",
    "Visitors can see paintings, sculptures and photographs from local artists.",
    "Guided tours start every hour and last about forty minutes!",
    "Is the café on the top floor open on Sundays?",
    'The director said the wing "changes how we see the city."',
]


def run(text, **params):
    stats = StageStats()
    out = C4Quality(C4Quality.Params(**params)).process_document(Document(id="d", text=text), stats)
    return out, stats


def test_keeps_clean_lines_and_replaces_text():
    noisy = "\n".join([
        "Home | About | Contact",  # no terminal punctuation
        SENTENCES[0] + "[1]",  # citation marker removed, then kept
        "Too short.",  # fewer than 3 words
        SENTENCES[1],
        "Please enable JavaScript to view the comments.",
        "  " + SENTENCES[2] + "  ",  # stripped
        "This site uses cookies to improve your experience.",
        SENTENCES[3],
        "Read more...",  # an ellipsis is not terminal punctuation
        SENTENCES[4],
    ])
    out, stats = run(noisy)
    assert out.text == "\n".join(SENTENCES)
    assert stats.counters == {"lines_removed.no_terminal_punctuation": 2, "lines_removed.too_few_words": 1,
                              "lines_removed.drop_word": 1, "lines_removed.policy": 1}


@pytest.mark.parametrize("text, expected", [
    ("", "too_few_sentences"),
    ("  \n \t\n", "too_few_sentences"),
    (" ".join(SENTENCES[:4]), "too_few_sentences"),  # one line, four sentences
    ("\n".join(SENTENCES[:4] + ["Menu", "Share this"]), "too_few_sentences"),
    ("委员会将于下周开会讨论预算。这是一个测试。", "too_few_sentences"),  # no spaces: one "word"
    ("\n".join(SENTENCES + ["Lorem ipsum dolor sit amet, consectetur."]), "contains_lorem_ipsum"),
    ("\n".join(SENTENCES + ["The function f(x) { return x; } is short."]), "contains_curly_bracket"),
])
def test_page_reasons(text, expected):
    out, _ = run(text)
    assert isinstance(out, Reject) and out.reason == f"c4_quality.{expected}"


def test_page_rules_look_only_at_kept_lines():
    # as in the reference implementation, a '{' or 'lorem ipsum' on a removed line is harmless
    out, _ = run("\n".join(SENTENCES + ["var x = {a: 1}", "lorem ipsum"]))
    assert out.text == "\n".join(SENTENCES)


def test_non_latin_and_single_line_documents():
    russian = "Музей открыл новое крыло. Посетители довольны! Экскурсии идут каждый час. Кафе открыто? Да, конечно."
    out, _ = run(russian)
    assert out.text == russian  # one line, five sentences: kept unchanged
    out, _ = run(" ".join(SENTENCES))
    assert out.text == " ".join(SENTENCES)


def test_params():
    out, _ = run("\n".join(SENTENCES[:3]), min_sentences=3)
    assert out.text == "\n".join(SENTENCES[:3])
    out, _ = run("\n".join(SENTENCES + ["Ok then."]), min_words_per_line=2)
    assert out.text.endswith("Ok then.")
    out, _ = run("\n".join(SENTENCES + ["A line ending in a colon:"]), end_punctuation=".?!\":")
    assert out.text.endswith("colon:")
    lines = ["Opening hours and prices", *SENTENCES, "Read the full story here...", "Tickets cost ten euros"]
    out, stats = run("\n".join(lines), end_punctuation=None)
    assert out.text.splitlines() == lines
    assert "lines_removed.no_terminal_punctuation" not in stats.counters
    out, stats = run("\n".join(["Home", *SENTENCES]), end_punctuation=None)
    assert out.text == "\n".join(SENTENCES) and stats.counters["lines_removed.too_few_words"] == 1
    out, _ = run("\n".join(SENTENCES + ["Please enable JavaScript to continue."]), line_drop_words=[])
    assert "JavaScript" in out.text
    out, _ = run("\n".join(SENTENCES + ["The set {1, 2} is small."]), drop_curly_bracket=False)
    assert "{1, 2}" in out.text
    with pytest.raises(ValueError, match="citation_pattern"):
        C4Quality.Params(citation_pattern="[unclosed")


def test_process_writes_cleaned_text_and_rejects_with_original():
    docs = [Document(id="keep", text="Menu\n" + "\n".join(SENTENCES)), Document(id="drop", text="Menu\nHello.")]
    result = C4Quality().process(documents_to_table(docs, DOCUMENT_SCHEMA))
    assert result.kept["text"].to_pylist() == ["\n".join(SENTENCES)]
    assert result.rejected["text"].to_pylist() == ["Menu\nHello."]
    assert result.stats.rejected == {"c4_quality.too_few_sentences": 1}
    assert result.stats.counters["lines_removed.no_terminal_punctuation"] == 2


def run_v2(text, **params):
    stats = StageStats()
    return C4QualityV2(C4QualityV2.Params(**params)).process_document(Document(id="d", text=text), stats), stats


def test_v2_keeps_the_paragraphs_of_hard_wrapped_text():
    wrapped = textwrap.fill(" ".join(SENTENCES), 60) + "\n\n" + textwrap.fill(" ".join(SENTENCES[:3]), 60)
    out, stats = run(wrapped)  # lines that happen to end a sentence are kept: stitched fragments
    assert out.text.startswith(SENTENCES[0] + "\nforty minutes! Is the café")
    assert stats.counters["lines_removed.no_terminal_punctuation"] == 5
    out, stats = run_v2(wrapped)
    assert out.text == " ".join(SENTENCES) + "\n" + " ".join(SENTENCES[:3])
    assert stats.counters == {"lines_removed.no_terminal_punctuation": 1}  # the blank line, as in c4_quality


@pytest.mark.parametrize("text", [
    "\n".join(["Home | About | Contact", SENTENCES[0] + "[1]", "Too short.", *SENTENCES[1:], "Read more..."]),
    "\n".join(SENTENCES[:3] + ["Menu"]),
    "\n".join(SENTENCES + ["The function f(x) { return x; } is short."]),
])
def test_v2_decides_as_v1_on_text_that_is_not_hard_wrapped(text):
    (old, old_stats), (new, new_stats) = run(text), run_v2(text)
    assert (old.reason.split(".")[-1] if isinstance(old, Reject) else old.text) == (
        new.reason.split(".")[-1] if isinstance(new, Reject) else new.text)
    assert old_stats.counters == new_stats.counters
