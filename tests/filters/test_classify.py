"""Tests for the `classify` stage: scores and domains on a model trained here on inline
documents, the input's domain kept, null scores for empty text, bounded prefixes, the
per-process model cache, and a run through the runner with `select` after it."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

import filters.classify as classify_module
from filters.classifier import load_classifier_config, train_classifier
from filters.classify import Classify
from pipeline.config import load_config
from pipeline.record import DOCUMENT_SCHEMA

FINANCE = ["shares rose as the bank reported higher quarterly profit", "bond yields and stock prices fell",
           "the company said net income and revenue grew", "investors sold shares after the earnings report"]
SPORT = ["the striker scored twice in the second half", "the team won the match after extra time",
         "the coach praised his players after the game", "fans cheered as the champions lifted the cup"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    for name, texts in (("fin", FINANCE), ("gen", SPORT)):
        fillers = ["today", "again", "here", "now", "later", "there", "early", "still", "too", "soon"]
        rows = [{"text": f"{a} and {b} {f}"} for a in texts for b in texts for f in fillers]
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"seed": 0, "positive_label": "financial", "split": {"dev": 0.2, "test": 0.0},
              "sources": [{"path": str(root / "fin.jsonl"), "format": "jsonl", "label": "financial"},
                          {"path": str(root / "gen.jsonl"), "format": "jsonl", "label": "general"}],
              "fasttext": {"dim": 8, "epoch": 30}}
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    train_classifier(load_classifier_config(root / "c.yaml"), root / "model")
    return root / "model"


def table(texts, domains=None):
    rows = [{"id": f"d{i}", "text": t, "domain": (domains or [None] * len(texts))[i]} for i, t in enumerate(texts)]
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


def test_scores_domains_and_input_domain_kept(model_dir):
    stage = Classify(Classify.Params(quality_model=str(model_dir / "model.bin"),
                                     domain_model=str(model_dir / "model.bin")))
    stage.check()
    texts = ["profit and shares rose at the bank", "the team won the match", "", "the coach", "stock prices fell"]
    result = stage.process(table(texts, [None, None, None, None, "web"]))
    out = result.kept.to_pylist()
    assert result.rejected.num_rows == 0 and result.kept.schema == DOCUMENT_SCHEMA
    assert [r["domain"] for r in out] == ["financial", "general", None, "general", "web"]
    assert out[0]["quality_score"] > 0.5 > out[1]["quality_score"]
    assert out[0]["domain_score"] == out[0]["quality_score"]  # P(financial) of a financial doc
    assert out[1]["domain_score"] == pytest.approx(1 - out[1]["quality_score"], abs=1e-4)
    assert out[2]["quality_score"] is None and out[2]["domain_score"] is None  # no tokens: no score
    assert out[4]["domain_score"] is None  # "web" is not a label of the model
    counters = result.stats.counters
    assert counters["no_text"] == 1 and counters["domain.web.from_input"] == 1 and counters["domain.financial"] == 1
    assert result.stats.docs_in == result.stats.docs_out == 5


def test_domain_of_a_model_trained_on_topics(tmp_path, monkeypatch):
    """Sport and weather as two topics of `general`: the stage still writes labels, and a general
    document's domain_score is the sum of its topics' probabilities."""
    monkeypatch.setattr(classify_module, "_BUNDLES", {})  # the other tests count the cached models
    weather = ["heavy rain and strong wind are expected tonight", "sunny spells with a light breeze",
               "snow and frost will cover the hills", "temperatures drop below freezing overnight"]
    sources = []
    for label, topic, texts in (("financial", None, FINANCE), ("general", "sport", SPORT),
                                ("general", "weather", weather)):
        rows = [{"text": f"{a} and {b} {f}"} for a in texts for b in texts for f in ("today", "again", "now")]
        (tmp_path / f"{label}-{topic}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        sources.append({"path": str(tmp_path / f"{label}-{topic}.jsonl"), "format": "jsonl", "label": label,
                        **({"topic": topic} if topic else {})})
    config = {"seed": 0, "positive_label": "financial", "split": {"dev": 0.2, "test": 0.0}, "sources": sources,
              "fasttext": {"dim": 8, "epoch": 30}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    train_classifier(load_classifier_config(tmp_path / "c.yaml"), tmp_path / "model")
    stage = Classify(Classify.Params(domain_model=str(tmp_path / "model" / "model.bin")))
    stage.check()
    assert len(stage._domain().model.get_labels()) == 3
    out = stage.process(table(["profit and shares rose at the bank", "the team won the match",
                               "rain and wind tonight"])).kept.to_pylist()
    assert [r["domain"] for r in out] == ["financial", "general", "general"]
    assert all(r["domain_score"] > 0.5 for r in out)


def test_long_documents_scored_on_a_prefix(model_dir):
    stage = Classify(Classify.Params(quality_model=str(model_dir / "model.bin"), max_bytes=40))
    long = "shares rose as the bank reported profit " + "the team won the match " * 50
    out = stage.process(table([long, "shares rose as the bank reported profit"])).kept.to_pylist()
    assert stage.process(table([long])).stats.counters["truncated"] == 1
    assert out[0]["quality_score"] == pytest.approx(out[1]["quality_score"], abs=0.05)
    assert out[0]["text"] == long  # only the score uses the prefix


def test_model_loaded_once_per_process(model_dir):
    path = str(model_dir / "model.bin")
    a = Classify(Classify.Params(quality_model=path))
    a.process(table(["x y"]))
    loaded = dict(classify_module._BUNDLES)
    Classify(Classify.Params(quality_model=path)).process(table(["shares"]))
    assert classify_module._BUNDLES == loaded and len(loaded) == 1


def test_params_errors(model_dir, tmp_path):
    with pytest.raises(ValidationError, match="give quality_model, domain_model or both"):
        Classify.Params()
    with pytest.raises(ValueError, match="does not exist"):
        Classify(Classify.Params(domain_model=str(tmp_path / "missing.bin"))).check()
    with pytest.raises(ValueError, match="not a label"):
        Classify(Classify.Params(quality_model=str(model_dir / "model.bin"), quality_label="hq")).check()


@pytest.mark.slow
def test_classify_then_select_through_the_runner(model_dir, tmp_path):
    from pipeline.cluster import open_client
    from pipeline.runner import Runner

    rows = [{"id": i, "text": f"{(FINANCE + SPORT)[i % 8]} {i}"} for i in range(200)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"output": str(tmp_path / "out"), "inputs": [{"path": str(tmp_path / "in.jsonl"), "format": "jsonl",
                                                           "source": "t"}],
              "read": {"max_docs_per_part": 50},
              "stages": [{"classify": {"domain_model": str(model_dir / "model.bin"),
                                       "quality_model": str(model_dir / "model.bin")}},
                         {"select": {"column": "quality_score", "keep_top": 0.25}}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    with open_client(workers=2) as client:
        Runner(load_config(tmp_path / "run.yaml"), client, progress=False).run()
    kept = [r for p in sorted((tmp_path / "out" / "02-select").glob("part-*.parquet"))
            for r in pq.read_table(p).to_pylist()]
    manifest = json.loads((tmp_path / "out" / "02-select" / "_manifest.json").read_text())
    assert len(kept) == 50 and manifest["selection"]["kept"] == 50
    assert all(r["domain"] == "financial" for r in kept)  # the most "financial" quarter
    assert min(r["quality_score"] for r in kept) >= manifest["selection"]["threshold"]
