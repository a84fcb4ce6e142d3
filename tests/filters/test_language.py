"""Language id: codes, scores, keep/min_score decisions and their reasons."""

from filters.language import Language, identify
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table

EN = "The committee will meet next week to discuss the budget and the new hiring plan for the school."
DE = "Der Ausschuss trifft sich nächste Woche, um den Haushalt und den neuen Einstellungsplan zu besprechen."
FR = "Le comité se réunira la semaine prochaine pour discuter du budget et du nouveau plan d'embauche."
ZH = "委员会将于下周开会讨论预算和学校新的招聘计划。"


def test_identify_languages():
    assert [identify(t)[0] for t in (EN, DE, FR, ZH)] == ["en", "de", "fr", "zh"]
    assert identify(EN)[1] > 0.9
    assert identify("") == ("und", 0.0) and identify("  123 456 !!! ") == ("und", 0.0)


def run(texts: dict[str, str], **params):
    docs = [Document(id=k, text=v, source="s") for k, v in texts.items()]
    return Language(Language.Params(**params)).process(documents_to_table(docs, DOCUMENT_SCHEMA))


def test_keep_and_min_score_reasons():
    result = run({"en": EN, "de": DE, "empty": "", "fr": FR}, keep=["en", "fr"], min_score=0.5)
    assert result.kept["id"].to_pylist() == ["en", "fr"]
    assert result.kept["language"].to_pylist() == ["en", "fr"]
    rejected = dict(zip(result.rejected["id"].to_pylist(), result.rejected["reason"].to_pylist()))
    assert rejected == {"de": "language.language_not_kept", "empty": "language.language_not_kept"}
    assert result.rejected["language"].to_pylist() == ["de", "und"]  # rejected rows keep their scores
    assert result.stats.counters["languages.de"] == 1


def test_min_score_alone():
    result = run({"en": EN, "empty": ""}, min_score=0.5)
    assert result.rejected["reason"].to_pylist() == ["language.score_below_min"]
