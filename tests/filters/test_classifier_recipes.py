"""Done-when checks for the two recipes in configs/: the domain classifier on BBC News (never
seen in training) and the quality classifier on CLEANEVAL-derived page lines (CLEANEVAL is
not in its training data). Each trains the full recipe (about 15 s and 60 s on 2 cores)."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import numpy as np
import pytest
import yaml

from filters.classifier import ClassifierConfig, load_bundle, normalize, train_classifier, unit_hash
from filters.classifier_linear import LinearModel
from filters.classifier_metrics import classification_report
from tests.conftest import REPO, SHARED_DATA, shared_path


def recipe(name: str) -> ClassifierConfig:
    """configs/<name>.yaml with its `../shared/data` paths pointed at the shared data folder."""
    data = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    for source in data["sources"]:
        source["path"] = source["path"].replace("../shared/data", str(SHARED_DATA))
    return ClassifierConfig.model_validate(data)


@pytest.mark.slow
def test_domain_recipe_on_bbc(tmp_path):
    """The threshold is the one calibrated on the recipe's dev split; BBC only evaluates. The two
    halves (by a hash of the text, as bench/domain_classifier.py splits them) are two unseen
    samples: the recipe must hold on each, not only on their sum."""
    bbc = [json.loads(line) for line in shared_path("fin_vs_general_bbc", "documents.jsonl").open()]
    shared_path("financial_reuters21578")
    report = train_classifier(recipe("classifier-domain"), tmp_path)
    bundle = load_bundle(tmp_path / "model.bin")
    assert bundle.threshold == report["threshold"] and bundle.features == "content_words_v1"
    assert isinstance(bundle.model, LinearModel)
    probs = bundle.proba([d["text"] for d in bbc])
    predicted = bundle.predict(probs)
    scores = probs[:, bundle.labels.index("financial")]
    truth = [d["label"] for d in bbc]
    report = classification_report(truth, predicted, bundle.labels, scores, "financial")
    per_category = Counter((d["category"], p) for d, p in zip(bbc, predicted))
    half_a = [unit_hash("bbc-half", normalize(d["text"])) < 0.5 for d in bbc]
    halves = {name: np.mean([t == p for t, p, a in zip(truth, predicted, half_a) if a == want])
              for name, want in (("A", True), ("B", False))}
    print(f"\nBBC: accuracy {report['accuracy']:.4f} (half A {halves['A']:.4f}, half B {halves['B']:.4f}), "
          f"ROC-AUC {report['roc_auc']:.4f}, F1 financial {report['financial']['f1']:.4f}, "
          f"F1 general {report['general']['f1']:.4f}")
    for category in ("business", "politics", "sport"):
        print(f"  {category:<9} " + ", ".join(f"{label}: {per_category[(category, label)]}" for label in bundle.labels))
    # 0.9473 and 0.9869 (half A 0.9332, B 0.9636); the fastText recipe before it: 0.9264, 0.9800 (A 0.9165);
    # before content words: 0.9125, 0.9681. The 0.95 is not reached (README, "Domain classifier").
    assert report["accuracy"] >= 0.94 and report["roc_auc"] >= 0.985
    assert min(halves.values()) >= 0.925
    assert per_category[("sport", "general")] / sum(d["category"] == "sport" for d in bbc) >= 0.95


@pytest.mark.slow
def test_quality_recipe_scores_main_text_above_boilerplate(tmp_path):
    path = shared_path("quality_lines_cleaneval_derived", "lines_labeled.jsonl.gz")
    pages = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    report = train_classifier(recipe("classifier-quality"), tmp_path)
    bundle = load_bundle(tmp_path / "model.bin")
    wins = total = 0
    for page in pages:
        main = "\n".join(line for line, y in zip(page["lines"], page["labels"]) if y)
        boilerplate = "\n".join(line for line, y in zip(page["lines"], page["labels"]) if not y)
        if main and boilerplate:
            score_main, score_boilerplate = bundle.positive_proba([main, boilerplate])
            wins, total = wins + (score_main > score_boilerplate), total + 1
    print(f"\nquality: main text above boilerplate on {wins}/{total} pages ({wins / total:.4f}); "
          f"held-out test split ROC-AUC {report['test']['roc_auc']}")
    assert total > 400 and wins / total >= 0.85
