"""Tests for the `model: logistic` backend (filters/classifier_linear.py): the model file read
back as users read Parquet, identical bytes from the same config, scores equal before and
after saving, topics, the classify stage on it, `where` on a list field, and config errors."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

import filters.classify as classify_module
from filters.classifier import (
    ClassifierConfig,
    load_bundle,
    load_classifier_config,
    load_examples,
    predict_proba,
    train_classifier,
    train_model,
)
from filters.classifier_linear import LinearModel
from filters.classify import Classify
from pipeline.config import ConfigError
from pipeline.record import DOCUMENT_SCHEMA

FINANCE = ["shares rose as the bank reported higher quarterly profit", "bond yields and stock prices fell",
           "the company said net income and revenue grew", "investors sold shares after the earnings report"]
SPORT = ["the striker scored twice in the second half", "the team won the match after extra time",
         "the coach praised his players after the game", "fans cheered as the champions lifted the cup"]
WEATHER = ["heavy rain and strong wind are expected tonight", "sunny spells with a light breeze",
           "snow and frost will cover the hills", "temperatures drop below freezing overnight"]


def write_source(path, texts, extra=None):
    rows = [{"text": f"{a} and {b} {f}", **(extra or {})} for a in texts for b in texts
            for f in ("today", "again", "here", "now", "later")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def config(tmp_path, topics=False, **extra) -> dict:
    sources = [{"path": write_source(tmp_path / "fin.jsonl", FINANCE), "format": "jsonl", "label": "financial"},
               {"path": write_source(tmp_path / "sport.jsonl", SPORT), "format": "jsonl", "label": "general"}]
    if topics:
        sources[1]["topic"] = "sport"
        sources.append({"path": write_source(tmp_path / "weather.jsonl", WEATHER), "format": "jsonl",
                        "label": "general", "topic": "weather"})
    return {"seed": 0, "positive_label": "financial", "split": {"dev": 0.2, "test": 0.1}, "sources": sources,
            "model": "logistic", "features": "content_words_v1", **extra}


def test_model_file_is_parquet_users_can_read_and_the_same_config_writes_the_same_bytes(tmp_path):
    data = config(tmp_path)
    report = train_classifier(ClassifierConfig.model_validate(data), tmp_path / "a")
    train_classifier(ClassifierConfig.model_validate(data), tmp_path / "b")
    model_bytes = (tmp_path / "a" / "model.bin").read_bytes()
    assert model_bytes[:4] == b"PAR1" and model_bytes == (tmp_path / "b" / "model.bin").read_bytes()
    assert report["dev"]["accuracy"] == 1.0 and report["test"]["accuracy"] == 1.0

    frame = pd.read_parquet(tmp_path / "a" / "model.bin")
    assert list(frame.columns) == ["term", "idf", "w:financial", "w:general"]
    assert frame["term"].is_unique and (frame["idf"] >= 1).all() and (frame["w:general"] == -frame["w:financial"]).all()
    top = duckdb.sql(f"SELECT term FROM read_parquet('{tmp_path / 'a' / 'model.bin'}') "
                     "ORDER BY \"w:financial\" DESC LIMIT 5").fetchall()
    assert {t for (t,) in top} & {"shares", "profit", "bank", "earnings", "stock", "revenue", "income"}
    meta = json.loads(pa.parquet.read_schema(tmp_path / "a" / "model.bin").metadata[b"thresher.logistic"])
    assert meta["labels"] == ["financial", "general"] and meta["params"]["ngrams"] == 2


def test_scores_before_and_after_saving_are_equal(tmp_path):
    data = ClassifierConfig.model_validate(config(tmp_path))
    trained = train_model([ex for ex in load_examples(data) if ex.split == "train"], data)
    assert isinstance(trained, LinearModel)
    train_classifier(data, tmp_path / "m")
    bundle = load_bundle(tmp_path / "m" / "model.bin")
    texts = ["profit and shares rose at the bank", "the team won the match", "", "zzz unseen words"]
    labels, before = predict_proba(trained, texts, features="content_words_v1")
    assert labels == bundle.labels == ["financial", "general"]
    np.testing.assert_allclose(bundle.proba_normalized(texts), before, rtol=0, atol=1e-12)
    assert before[0, 0] > 0.5 > before[1, 0]
    np.testing.assert_allclose(before.sum(axis=1), 1.0)
    assert before[2, 0] == before[3, 0]  # no known n-gram: the intercept alone


def test_topics_and_the_classify_stage(tmp_path, monkeypatch):
    """Three topics, two labels: multinomial logistic regression; the stage writes labels and
    a general document's domain_score sums its topics'."""
    monkeypatch.setattr(classify_module, "_BUNDLES", {})  # test_classify counts the cached models
    train_classifier(ClassifierConfig.model_validate(config(tmp_path, topics=True)), tmp_path / "m")
    stage = Classify(Classify.Params(domain_model=str(tmp_path / "m" / "model.bin")))
    stage.check()
    assert stage._domain().model.get_labels() == ["financial", "sport", "weather"]
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(
        ["profit and shares rose at the bank", "the team won the match", "rain and wind tonight", ""])]
    out = stage.process(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)).kept.to_pylist()
    assert [r["domain"] for r in out] == ["financial", "general", "general", None]
    assert all(r["domain_score"] > 0.5 for r in out[:3]) and out[3]["domain_score"] is None


def test_where_on_a_list_field_matches_any_item(tmp_path):
    data = config(tmp_path)
    rows = [{"text": t, "topics": topics} for t, topics in
            (("grain exports rose this year", ["grain"]), ("the bank bought the insurer", ["acq", "usa"]),
             ("quarterly profit rose at the firm", ["earn"]), ("no topic at all on this wire", []))]
    (tmp_path / "wires.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data["sources"][0] = {"path": str(tmp_path / "wires.jsonl"), "format": "jsonl", "label": "financial",
                          "where": {"topics": ["earn", "acq"]}}
    texts = sorted(ex.text for ex in load_examples(ClassifierConfig.model_validate(data)) if ex.label == "financial")
    assert texts == ["quarterly profit rose at the firm", "the bank bought the insurer"]


def test_config_errors_name_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"logistic.ngrams: .*less than or equal to 3"):
        load_classifier_config(_write(tmp_path / "c.yaml", config(tmp_path, logistic={"ngrams": 4})))
    with pytest.raises(ConfigError, match=r"model: .*'fasttext' or 'logistic'"):
        load_classifier_config(_write(tmp_path / "c.yaml", config(tmp_path, model="svm")))
    with pytest.raises(ValueError, match=r"lower logistic\.min_df"):
        train_classifier(ClassifierConfig.model_validate(config(tmp_path, logistic={"min_df": 10_000})), tmp_path / "m")


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


WORDS = ["shares", "rose", "the", "bank", "team", "won", "rain", "cup", "unseen", "é", "0", "%"]
SPACES = [" ", "  ", "\t", "\n", "\xa0", "\x1c", "\u2028", "\u3000"]


@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_scoring_features_equal_the_vectorisers_on_any_text(ngrams):
    """`LinearModel.features` counts n-grams itself (twice as fast as sklearn's `transform`); on
    random texts of known and unknown words, any whitespace, empty and repeated, the two must
    give the same matrix, entry for entry."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from filters.classifier_linear import LogisticParams, train_linear

    texts = [f"{a} and {b}" for a in FINANCE + SPORT for b in WEATHER + FINANCE]
    model = train_linear(texts, ["financial" if t.split(" and ")[0] in FINANCE else "general" for t in texts],
                         LogisticParams(ngrams=ngrams, min_df=1))
    word_lists = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SPACES)), max_size=30)

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(st.lists(word_lists.map(lambda ws: "".join(w + s for w, s in ws)), min_size=1, max_size=5))
    def check(batch):
        ours, sklearns = model.features(batch), model.vectorizer.transform(batch)
        assert ours.shape == sklearns.shape and (ours != sklearns).nnz == 0

    check()
    every = texts + ["", "   ", "unseen words only", "the the the the"]
    assert (model.features(every) != model.vectorizer.transform(every)).nnz == 0
    assert model.features(texts).nnz > 0
