"""Gopher quality and repetition rules: each rule's decision and reason on tiny documents; the v2
filters on WikiText and hard-wrapped text, and as v1 elsewhere."""

import json
import textwrap

import pytest

from filters.gopher import GopherQuality, GopherQualityV2, GopherRepetition, GopherRepetitionV2
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table

GOOD = """The committee met on Monday to review the budget for the coming year.
Members agreed that the library needs new shelves and a better heating system.
The treasurer explained how the costs would be shared with the city council.
Several residents asked whether the park could stay open later during the summer.
After a long discussion, the chair promised to publish the minutes by Friday.
Everyone thanked the volunteers who have organised the spring festival with great care."""
RUSSIAN_ONCE = ("Комитет собрался в понедельник, чтобы обсудить бюджет библиотеки на следующий год. "
                "Жители спросили, можно ли оставить парк открытым летом подольше. "
                "Казначей объяснил, как расходы будут разделены с городским советом. ")
RUSSIAN = RUSSIAN_ONCE * 3
CHINESE = "委员会将于下周开会讨论预算和学校新的招聘计划。这是一个测试。"


def reason(stage, text):
    return stage.filter(Document(id="d", text=text))


def quality(text, **params):
    return reason(GopherQuality(GopherQuality.Params(**params)), text)


def repetition(text, **params):
    return reason(GopherRepetition(GopherRepetition.Params(**params)), text)


@pytest.mark.parametrize("text, expected", [
    (GOOD, None),
    (GOOD.replace("\n", " "), None),  # a single line
    ("", "too_few_words"),
    (" \n\t ", "too_few_words"),
    ("The cat and the dog sat with that man.", "too_few_words"),
    (CHINESE, "too_few_words"),  # no spaces: two words
    (RUSSIAN, "too_few_stop_words"),  # long enough, but none of the English stop words
    ("to be or not to be as we go up " * 6, "mean_word_length_too_short"),
    ("the and internationalization telecommunications characteristically " * 12, "mean_word_length_too_long"),
    (GOOD + " #news #today #local #budget #city #council #park #summer #library #friday #festival", "too_many_hashes"),
    (GOOD.replace(" the ", " the... "), "too_many_ellipses"),
    ("\n".join(f"- item {i} of the list with a few more words" for i in range(10)), "too_many_bullet_lines"),
    ("\n".join(f"line {i} of the story goes on and on for a while with more words…" for i in range(6)),
     "too_many_ellipsis_lines"),
    (GOOD + "\n" + " ".join(str(n) for n in range(40)), "too_few_alpha_words"),
    ("Cats sleep all day long in sunny spots near windows, dreaming quietly. " * 6, "too_few_stop_words"),
])
def test_gopher_quality_reasons(text, expected):
    assert quality(text) == expected


def test_gopher_quality_thresholds_are_params():
    assert quality(GOOD, max_words=20) == "too_many_words"
    assert quality(GOOD, min_stop_words=9) == "too_few_stop_words"
    assert quality("to be or not to be as we go up " * 6, min_mean_word_length=None) is None
    assert quality(RUSSIAN, stop_words=["в", "на"]) is None


PARAGRAPH = "A walk along the river at dawn shows herons, quiet boats and the old mill."


@pytest.mark.parametrize("text, params, expected", [
    (GOOD, {}, None),
    (RUSSIAN_ONCE, {}, None),
    (RUSSIAN, {}, "duplicate_5gram_chars_too_high"),  # one line: the repeats are n-grams
    ("", {}, "empty"),
    (" \n\n \t", {}, "empty"),
    # the literal rule: in a tiny document the most frequent 2-gram (even seen once) is most of it
    (CHINESE, {}, "top_2gram_chars_too_high"),
    ("Just one short line here.", {}, "top_2gram_chars_too_high"),
    (f"{PARAGRAPH}\n\n{PARAGRAPH}\n\n{GOOD}", {}, "duplicate_paragraph_fraction_too_high"),
    (f"{GOOD}\n\n{PARAGRAPH * 3}\n\nShort one.\n\n{PARAGRAPH * 3}", {}, "duplicate_paragraph_chars_too_high"),
    (f"{PARAGRAPH}\n{PARAGRAPH}\nA closing line.", {}, "duplicate_line_fraction_too_high"),
    (f"{GOOD}\n{PARAGRAPH * 3}\n{PARAGRAPH * 3}", {}, "duplicate_line_chars_too_high"),
    (GOOD, {"max_top_ngram_char_fraction": {3: 0.01}}, "top_3gram_chars_too_high"),
    (GOOD, {"max_top_ngram_char_fraction": {4: 0.005}}, "top_4gram_chars_too_high"),
    (f"{GOOD} {PARAGRAPH * 3}".replace("\n", " "), {}, "duplicate_5gram_chars_too_high"),
    (f"{GOOD} {PARAGRAPH}".replace("\n", " "), {"max_top_ngram_char_fraction": {},
                                                "max_duplicate_ngram_char_fraction": {10: 0.0}}, None),
    (f"{GOOD} {PARAGRAPH * 3}".replace("\n", " "), {"max_duplicate_ngram_char_fraction": {10: 0.1}},
     "duplicate_10gram_chars_too_high"),
])
def test_gopher_repetition_reasons(text, params, expected):
    assert repetition(text, **params) == expected


def test_write_scores_keeps_every_score_in_metadata():
    stage = GopherQuality(GopherQuality.Params(write_scores=True, min_words=60))
    docs = [Document(id="good", text=GOOD + " And one more sentence to pass sixty words easily here."),
            Document(id="short", text="The cat and the dog.", metadata={"kept": "yes"})]
    result = stage.process(documents_to_table(docs, DOCUMENT_SCHEMA))
    kept = json.loads(result.kept["metadata"][0].as_py())["gopher_quality"]
    rejected = json.loads(result.rejected["metadata"][0].as_py())
    assert result.rejected["reason"].to_pylist() == ["gopher_quality.too_few_words"]
    assert rejected["kept"] == "yes" and rejected["gopher_quality"]["words"] == 5
    assert set(kept) == set(rejected["gopher_quality"]) == {
        "words", "mean_word_length", "hash_word_ratio", "ellipsis_word_ratio", "bullet_line_fraction",
        "ellipsis_line_fraction", "alpha_word_fraction", "stop_words"}
    assert kept["words"] >= 60 and 0.8 < kept["alpha_word_fraction"] < 1
    assert result.stats.rejected == {"gopher_quality.too_few_words": 1}


def test_repetition_scores_of_empty_and_normal_documents():
    stage = GopherRepetition(GopherRepetition.Params(write_scores=True))
    docs = [Document(id="empty", text=""), Document(id="good", text=GOOD)]
    result = stage.process(documents_to_table(docs, DOCUMENT_SCHEMA))
    assert result.rejected["reason"].to_pylist() == ["gopher_repetition.empty"]
    empty = json.loads(result.rejected["metadata"][0].as_py())["gopher_repetition"]
    good = json.loads(result.kept["metadata"][0].as_py())["gopher_repetition"]
    assert set(empty) == set(good) and len(good) == 1 + 4 + 3 + 6
    assert empty["top_2gram_char_fraction"] == 0 and 0 < good["top_2gram_char_fraction"] < 0.2


def test_ngram_limits_are_validated():
    with pytest.raises(ValueError, match="n-gram sizes"):
        GopherRepetition.Params(max_top_ngram_char_fraction={0: 0.2})
    with pytest.raises(ValueError, match="n-gram sizes"):
        GopherRepetition.Params(max_duplicate_ngram_char_fraction={5: 1.5})


# -- the v2 filters: text as written (filters/layout.py) ---------------------------------------

WIKITEXT = (" = Budget meeting = \n \n " + GOOD.replace(".\n", " . \n \n ").replace(",", " ,")
            .replace("library", "<unk>").replace("council", "<unk>").replace("year", "2 @,@ 024 @-@ 25 year")
            + " . \n \n = = Minutes = = \n \n The <unk> were published on 3 @.@ 5 pages . \n")


def v2(stage_class, text, **params):
    return reason(stage_class(stage_class.Params(**params)), text)


def test_v2_count_wikitext_words_as_written():
    assert quality(WIKITEXT) == "too_few_alpha_words"  # '<unk>' is '<', 'unk', '>'; '@,@' three symbols
    assert v2(GopherQualityV2, WIKITEXT) is None
    assert repetition(WIKITEXT) == "duplicate_line_fraction_too_high"  # the ' ' lines between paragraphs
    assert v2(GopherRepetitionV2, WIKITEXT) is None


def test_v2_still_count_repeated_lines_and_paragraphs():
    repeated = f"{PARAGRAPH}\n \n{PARAGRAPH}\n \n{PARAGRAPH}"  # 2 of 5 lines repeat; blank lines count as lines
    assert v2(GopherRepetitionV2, repeated) == "duplicate_line_fraction_too_high"
    assert v2(GopherRepetitionV2, f"{PARAGRAPH}\n\n{PARAGRAPH}\n\n{GOOD}") == "duplicate_paragraph_fraction_too_high"
    wrapped = textwrap.fill(GOOD.replace("\n", " "), 60)  # a hard-wrapped paragraph, repeated
    assert v2(GopherRepetitionV2, f"{wrapped}\n{wrapped}") == "duplicate_line_fraction_too_high"


@pytest.mark.parametrize("text", [GOOD, GOOD.replace("\n", " "), RUSSIAN, CHINESE, "", " \n\n \t",
                                  f"{PARAGRAPH}\n{PARAGRAPH}\nA closing line.", GOOD + "\n" + "1 2 3 4 " * 10])
def test_v2_decide_as_v1_on_text_without_layout_to_undo(text):
    assert v2(GopherQualityV2, text) == quality(text)
    assert v2(GopherRepetitionV2, text) == repetition(text)
