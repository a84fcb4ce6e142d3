"""Tests for filters.classifier_features: the content-words view (one spelling for money and
percent, no punctuation, numbers or stop words), the view function, and that a trained model
remembers its view and scores with it."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from filters.classifier import load_bundle, load_classifier_config, normalize, train_classifier
from filters.classifier_features import content_words, feature_view
from tests.filters.test_classifier import agnews_config


def test_content_words_spell_units_one_way_across_sources():
    reuters = content_words(normalize("Profits ROSE 12.5 pct to 1,200 mln dlrs, the company said."))
    bbc = content_words(normalize('Profits rose 12.5 per cent to £1,200m, the firm said: "A record".'))
    assert reuters == "profits rose % million $ company"
    assert bbc == "profits rose % $ million firm record"


def test_content_words_reads_a_lone_m_as_million_only_after_a_number():
    assert content_words(normalize("I'm sure it cost £5m, not 5bn euros")) == "m sure cost $ million billion euros"


def test_feature_view_composes_with_the_length_token():
    assert feature_view()("the cat .") == "the cat ."
    assert feature_view("content_words_v1", length_token=True)("the cat .") == "cat __len1"
    with pytest.raises(ValueError, match="features 'words' is unknown"):
        feature_view("words")


def test_model_scores_with_the_view_it_was_trained_on(tmp_path):
    path = agnews_config(tmp_path, 200)
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "features": "content_words_v1"}))
    train_classifier(load_classifier_config(path), tmp_path / "m")
    bundle = load_bundle(tmp_path / "m" / "model.bin")
    assert bundle.features == "content_words_v1"
    texts = ["Shares of the bank fell 5% as profits dropped", "The striker scored twice in the final"]
    # punctuation and stop words are not features: adding them changes nothing
    padded = [f'"{t}," he said, "and that is that."' for t in texts]
    assert np.array_equal(bundle.proba(texts), bundle.proba(padded))
    assert bundle.predict(bundle.proba(texts)) == ["financial", "general"]
