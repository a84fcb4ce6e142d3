"""Tests for filters.classifier (+ classifier_metrics and the `thresher classifier` CLI):
normalisation, deterministic splits, metrics on hand-computed cases, config errors, and
training determinism on a small AG News slice."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import yaml

from filters.classifier import (
    ModelBundle,
    SplitConfig,
    assign_split,
    bounded_prefix,
    load_bundle,
    load_classifier_config,
    normalize,
    predict_proba,
    train_classifier,
    with_length_token,
)
from filters.classifier_metrics import (
    calibrate_threshold,
    calibration_table,
    classification_report,
    roc_auc,
)
from filters.cli import add_commands
from pipeline.config import ConfigError
from tests.conftest import shared_path


def test_normalize_tokens_digits_and_idempotence():
    text = "Profits ROSE 12.5% to $1,200 mln.\nNew line"
    assert normalize(text) == "profits rose 0 . 0 % to $ 0 , 0 mln . new line"
    assert normalize(normalize(text)) == normalize(text)


def test_bounded_prefix_cuts_on_bytes_and_characters():
    assert bounded_prefix("abc", 10) == "abc"
    cut = bounded_prefix("é" * 100, 11)  # two bytes each: 5 whole characters fit
    assert cut == "é" * 5


def test_length_token_buckets():
    assert with_length_token("home") == "home __len1"
    assert with_length_token("a b c d") == "a b c d __len3"


def test_split_is_deterministic_and_near_fractions():
    split = SplitConfig(dev=0.1, test=0.2)
    parts = [assign_split(f"doc {i}", split, seed=3) for i in range(5000)]
    assert parts == [assign_split(f"doc {i}", split, seed=3) for i in range(5000)]
    assert abs(parts.count("test") / 5000 - 0.2) < 0.02 and abs(parts.count("dev") / 5000 - 0.1) < 0.02
    assert parts != [assign_split(f"doc {i}", split, seed=4) for i in range(5000)]


def test_roc_auc_known_cases():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5  # ties count half
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.5, 0.8])) == 0.75
    assert roc_auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_calibrate_threshold_separates_and_prefers_middle():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.9])
    assert calibrate_threshold(y, p, "accuracy") == pytest.approx(0.25)
    assert calibrate_threshold(y, p, "none") == 0.5
    # source_accuracy weighs each group equally: 1 positive in group 1 outweighs 3 negatives
    y2, p2, g2 = np.array([0, 0, 0, 1]), np.array([0.6, 0.6, 0.6, 0.7]), np.array([0, 0, 0, 1])
    assert calibrate_threshold(y2, p2, "accuracy") > 0.6
    assert calibrate_threshold(y2, p2, "source_accuracy", g2) == pytest.approx(0.65)


def test_classification_report_counts():
    truth = ["fin", "fin", "gen", "gen", "gen"]
    pred = ["fin", "gen", "gen", "gen", "fin"]
    r = classification_report(truth, pred, ["fin", "gen"], np.array([0.9, 0.4, 0.1, 0.2, 0.6]), "fin")
    assert r["accuracy"] == 0.6
    assert r["fin"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert r["confusion"] == {"fin": {"fin": 1, "gen": 1}, "gen": {"fin": 1, "gen": 2}}
    assert r["roc_auc"] == pytest.approx(5 / 6, abs=1e-4)
    assert sum(row["count"] for row in r["calibration"]) == 5


def test_calibration_table_bins():
    rows = calibration_table(np.array([0, 1, 1]), np.array([0.05, 0.95, 1.0]), bins=10)
    assert rows[0]["bin"] == [0.0, 0.1] and rows[0]["fraction_positive"] == 0.0
    assert rows[-1]["count"] == 2 and rows[-1]["fraction_positive"] == 1.0


def test_bundle_predict_uses_threshold():
    bundle = ModelBundle(None, ["fin", "gen"], "fin", 0.3)
    assert bundle.predict(np.array([[0.35, 0.65], [0.2, 0.8]])) == ["fin", "gen"]


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_errors_name_the_setting(tmp_path):
    base = {"sources": [{"path": "a.jsonl", "format": "jsonl", "label": "x"},
                        {"path": "b.jsonl", "format": "jsonl", "label": "y"}]}
    with pytest.raises(ConfigError, match="positive_label is required"):
        load_classifier_config(_write(tmp_path / "c.yaml", base))
    bad = {**base, "positive_label": "x", "sources": [{**base["sources"][0], "format": "html"}, base["sources"][1]]}
    with pytest.raises(ConfigError, match=r"sources\[0\].*html_text is required"):
        load_classifier_config(_write(tmp_path / "c.yaml", bad))
    with pytest.raises(ConfigError, match=r"fasttext.dimm: unknown key"):
        load_classifier_config(_write(tmp_path / "c.yaml", {**base, "positive_label": "x", "fasttext": {"dimm": 3}}))
    with pytest.raises(ConfigError, match="at least two different labels"):
        load_classifier_config(_write(tmp_path / "c.yaml", {"sources": base["sources"][:1]}))


def agnews_config(tmp_path, per_label: int = 300):
    path = str(shared_path("news_agnews_test", "ag_news_test.jsonl.gz"))
    data = {"seed": 1, "positive_label": "financial",
            "sources": [{"path": path, "format": "jsonl", "label": "financial", "where": {"category": "business"},
                         "max_docs": per_label},
                        {"path": path, "format": "jsonl", "label": "general",
                         "where": {"category": ["world", "sports"]}, "max_docs": per_label}],
            "split": {"dev": 0.15, "test": 0.15}, "fasttext": {"dim": 16, "epoch": 5}}
    return _write(tmp_path / "agnews.yaml", data)


def test_training_twice_gives_identical_predictions(tmp_path):
    config = load_classifier_config(agnews_config(tmp_path))
    report = train_classifier(config, tmp_path / "a")
    train_classifier(config, tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["config.yaml", "model.bin", "report.json"]
    texts = ["Oil prices rise as OPEC cuts output", "Striker scores twice in cup final", "Shares fall"]
    a, b = load_bundle(tmp_path / "a" / "model.bin"), load_bundle(tmp_path / "b" / "model.bin")
    assert np.array_equal(a.proba(texts), b.proba(texts))
    assert json.loads((tmp_path / "a" / "report.json").read_text()) == report
    assert report["examples"]["train"]["financial"] > 150 and report["test"]["accuracy"] > 0.7
    assert a.threshold == report["threshold"] and a.positive_label == "financial"


def main(argv: list[str]) -> int:
    """`thresher` with only the classifier commands (the CLI's error handling: exit 2)."""
    import argparse

    parser = argparse.ArgumentParser(prog="thresher")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"thresher: error: {error}", file=sys.stderr)
        return 2


def test_cli_train_and_evaluate_json(tmp_path, capsys):
    assert main(["classifier", "train", str(agnews_config(tmp_path, 200)), "--output", str(tmp_path / "m")]) == 0
    data = tmp_path / "eval.jsonl"
    rows = [{"text": "Stocks and bonds rally after the central bank cuts interest rates", "label": "financial"},
            {"text": "Quarterly profit beats forecasts as sales jump", "label": "financial"},
            {"text": "The home team won the championship game in overtime", "label": "general"},
            {"text": "Rebels and troops clash near the capital, killing ten", "label": "general"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["classifier", "evaluate", str(tmp_path / "m" / "model.bin"), str(tmp_path), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["examples"] == 4 and 0 <= metrics["accuracy"] <= 1
    assert set(metrics["financial"]) == {"precision", "recall", "f1", "support"} and "roc_auc" in metrics
    assert main(["classifier", "evaluate", str(tmp_path / "m" / "model.bin"), str(tmp_path / "none.csv")]) == 2
    assert "DATA" in capsys.readouterr().err


def test_fasttext_settings_that_break_single_thread_training_are_refused():
    import pytest

    from filters.classifier import FastTextParams

    with pytest.raises(ValueError, match="wordNgrams: use 2 or more"):
        FastTextParams(wordNgrams=1)
    assert FastTextParams(wordNgrams=1, minn=2, maxn=4).maxn == 4  # subword buckets keep the matrix


def test_bucket_must_leave_room_for_the_words():
    import pytest

    from filters.classifier import Example, FastTextParams, train_fasttext

    examples = [Example(f"word{i} other{i} more{i}", "a" if i % 2 else "b", "train", "s") for i in range(200)]
    with pytest.raises(ValueError, match=re.escape("fasttext.bucket: 1000 is too small for 601 words")):
        train_fasttext(examples, FastTextParams(bucket=1000), seed=0)


def test_topic_under_two_labels_is_refused(tmp_path):
    sources = [{"path": "a.jsonl", "format": "jsonl", "label": "x", "topic": "news"},
               {"path": "b.jsonl", "format": "jsonl", "label": "y", "topic": "news"}]
    with pytest.raises(ConfigError, match=r"sources\[1\]\.topic 'news' is already a topic of label 'x'"):
        load_classifier_config(_write(tmp_path / "c.yaml", {"positive_label": "x", "sources": sources}))
    sources[0]["topic"], sources[1] = "y", {"path": "b.jsonl", "format": "jsonl", "label": "y"}  # topic: its label
    with pytest.raises(ConfigError, match=r"sources\[1\]\.topic 'y' is already a topic of label 'x'"):
        load_classifier_config(_write(tmp_path / "c.yaml", {"positive_label": "x", "sources": sources}))


def test_training_on_topics_scores_labels_as_sums_of_topics(tmp_path):
    """AG business as topic `business` of `financial`, world and sports as two topics of
    `general`: fastText learns three classes, the bundle reports the two labels."""
    data = yaml.safe_load(agnews_config(tmp_path).read_text())
    general = data["sources"].pop()
    data["sources"][0]["topic"] = "business"
    data["sources"] += [{**general, "where": {"category": category}, "topic": category}
                        for category in ("world", "sports")]
    report = train_classifier(load_classifier_config(_write(tmp_path / "topics.yaml", data)), tmp_path / "m")
    bundle = load_bundle(tmp_path / "m" / "model.bin")
    assert bundle.labels == ["financial", "general"] and sorted(bundle.model.get_labels()) == [
        "__label__business", "__label__sports", "__label__world"]
    assert bundle.topics == {"business": "financial", "sports": "general", "world": "general"}
    texts = ["Oil prices rise as OPEC cuts output", "Striker scores twice in cup final", "Troops clash near capital"]
    topics, by_topic = predict_proba(bundle.model, [normalize(t) for t in texts], features=bundle.features)
    probs = bundle.proba(texts)
    assert np.allclose(probs[:, 0], by_topic[:, topics.index("business")])
    assert np.allclose(probs[:, 1], by_topic[:, topics.index("world")] + by_topic[:, topics.index("sports")])
    assert bundle.predict(probs) == ["financial", "general", "general"]
    assert set(report["test"]["confusion"]) == {"financial", "general"} and report["test"]["accuracy"] > 0.7
    assert report["examples"]["train"]["general"] > report["examples"]["train"]["financial"] > 150
    trained = yaml.safe_load((tmp_path / "m" / "config.yaml").read_text())
    trained["sources"][1]["topic"] = "politics"  # the saved config no longer names the model's topic `world`
    (tmp_path / "m" / "config.yaml").write_text(yaml.safe_dump(trained))
    with pytest.raises(ValueError, match=r"config.yaml: the model's topics \['world'\] are not in its sources"):
        load_bundle(tmp_path / "m" / "model.bin")
