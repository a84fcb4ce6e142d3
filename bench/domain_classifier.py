"""Benchmark: what each change to the domain recipe (configs/classifier-domain.yaml) bought.

Trains the recipe and variants of it (one fastText thread; 5 to 60 s each on 2 busy cores,
`--only` runs some) and prints, per variant: accuracy on the recipe's own dev
split (where the threshold is calibrated) and on BBC News (../shared/data/fin_vs_general_bbc,
never trained on): the whole set, its two halves A and B (split by a hash of the text,
duplicates together), the BBC ROC-AUC, and the best accuracy any threshold would give on BBC
(chosen *on* BBC, so not a result: the ceiling of the model's ranking).

    .venv/bin/python bench/domain_classifier.py [--only NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # the repo root, not bench/ (its filters.py would shadow the package)

import argparse
import copy
import json
import tempfile
import time

import numpy as np
import yaml

from filters.classifier import ClassifierConfig, load_bundle, normalize, train_classifier, unit_hash
from filters.classifier_metrics import roc_auc

DATA = REPO.parent / "shared" / "data"
DRAGNET = {"path": f"{DATA}/extraction_dragnet/gold/*.txt.gz", "format": "text", "label": "general", "min_words": 50}


def recipe() -> dict:
    data = yaml.safe_load((REPO / "configs" / "classifier-domain.yaml").read_text())
    for source in data["sources"]:
        source["path"] = source["path"].replace("../shared/data", str(DATA))
    return data


def variant(**changes) -> dict:
    """The recipe with `fasttext` and `logistic` settings merged, top-level keys replaced, and the
    special keys `dragnet` (add its pages as general), `cleaneval` (False: drop its gold text),
    `reuters_topics` (None: every Reuters body, not only these topics), `reuters_max_docs`,
    `ag_only` (AG News sources only) and `topics` (train on topics: AG News by category, the
    others as {path part: topic})."""
    data = copy.deepcopy(recipe())
    data["fasttext"].update(changes.pop("fasttext", {}))
    data["logistic"].update(changes.pop("logistic", {}))
    if "reuters_topics" in changes:
        topics = changes.pop("reuters_topics")
        data["sources"][0].pop("where", None)
        if topics is not None:
            data["sources"][0]["where"] = {"topics": topics}
    if not changes.pop("cleaneval", True):
        data["sources"] = [s for s in data["sources"] if "extraction_cleaneval" not in s["path"]]
    if changes.pop("dragnet", False):
        data["sources"].append(dict(DRAGNET))
    if "reuters_max_docs" in changes:
        data["sources"][0]["max_docs"] = changes.pop("reuters_max_docs")
    if changes.pop("ag_only", False):
        data["sources"] = [s for s in data["sources"] if "agnews" in s["path"]]
    if "topics" in changes:
        data["sources"] = with_topics(data["sources"], changes.pop("topics"))
    data.update(changes)
    return data


def with_topics(sources: list[dict], topics: dict[str, str]) -> list[dict]:
    """AG News sources split into one source per category, with the category as topic; other
    sources get the topic of the first `topics` key in their path (none: their label)."""
    out = []
    for source in sources:
        if "agnews" in source["path"]:
            categories = source["where"]["category"]
            for category in categories if isinstance(categories, list) else [categories]:
                out.append({**source, "where": {"category": category}, "topic": category})
            continue
        topic = next((t for part, t in topics.items() if part in source["path"]), None)
        out.append({**source, "topic": topic} if topic else source)
    return out


TOPICS = {"reuters": "business"}  # AG News by category; Reuters bodies as AG's `business`
# the fastText recipe (BBC 92.64%): every Reuters body, no CLEANEVAL
FASTTEXT = {"model": "fasttext", "reuters_topics": None, "cleaneval": False}
BEFORE = {**FASTTEXT, "features": "all_tokens", "dragnet": True}  # the first recipe (BBC 91.25%)
VARIANTS = {
    "before: all tokens, Dragnet pages as general": BEFORE,
    "before + char n-grams 3-5": {**BEFORE, "fasttext": {"minn": 3, "maxn": 5}},
    "before + all 13.9k Reuters bodies": {**BEFORE, "reuters_max_docs": None},
    "before + 20 epochs": {**BEFORE, "fasttext": {"epoch": 20}},
    "content words (Dragnet kept)": {**FASTTEXT, "dragnet": True},
    "content words, no Dragnet (the fastText recipe)": FASTTEXT,
    "recipe + char n-grams 3-5": {**FASTTEXT, "fasttext": {"minn": 3, "maxn": 5}},
    "recipe, AG News only": {**FASTTEXT, "ag_only": True},
    "recipe, seed 1": {**FASTTEXT, "seed": 1},
    "recipe, seed 2": {**FASTTEXT, "seed": 2},
    "topics: AG 4 topics, Reuters as business": {**FASTTEXT, "topics": TOPICS},
    "topics, seed 1": {**FASTTEXT, "topics": TOPICS, "seed": 1},
    "topics, seed 2": {**FASTTEXT, "topics": TOPICS, "seed": 2},
    "topics: Reuters its own topic": {**FASTTEXT, "topics": {"reuters": "reuters"}},
    "topics: AG 4, Reuters, Wikipedia, web apart": {**FASTTEXT, "topics": {"reuters": "reuters",
                                                                             "wikitext": "wikipedia", "cc2019": "web"}},
    "topics, 500 Reuters bodies": {**FASTTEXT, "topics": TOPICS, "reuters_max_docs": 500},
    "topics, 1,000 Reuters bodies": {**FASTTEXT, "topics": TOPICS, "reuters_max_docs": 1000},
    "topics, threshold by source_accuracy": {**FASTTEXT, "topics": TOPICS, "threshold_metric": "source_accuracy"},
    "topics, 10 epochs": {**FASTTEXT, "topics": TOPICS, "fasttext": {"epoch": 10}},
    "topics, ova loss": {**FASTTEXT, "topics": TOPICS, "fasttext": {"loss": "ova"}},
    "logistic, the fastText recipe's sources": {"reuters_topics": None, "cleaneval": False},
    "logistic + Reuters earn/acq only": {"cleaneval": False},
    "logistic + CLEANEVAL gold as general": {"reuters_topics": None},
    "logistic, both (the recipe)": {},
    "the recipe, seed 1": {"seed": 1},
    "the recipe, seed 2": {"seed": 2},
    "the recipe's sources with fastText": {"model": "fasttext"},
    "the recipe, all tokens": {"features": "all_tokens"},
    "the recipe, all 4,293 earn/acq bodies": {"reuters_max_docs": None},
    "the recipe + Dragnet pages as general": {"dragnet": True},
    "the recipe, n-grams to 3": {"logistic": {"ngrams": 3}},
    "the recipe, C 3": {"logistic": {"C": 3.0}},
}


def bbc() -> tuple[list[str], np.ndarray, np.ndarray]:
    docs = [json.loads(line) for line in (DATA / "fin_vs_general_bbc" / "documents.jsonl").open()]
    texts = [d["text"] for d in docs]
    half_a = np.array([unit_hash("bbc-half", normalize(t)) < 0.5 for t in texts])
    return texts, np.array([d["label"] == "financial" for d in docs]), half_a


def run(name: str, data: dict, texts: list[str], y: np.ndarray, half_a: np.ndarray) -> dict:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="domain-bench-") as tmp:
        report = train_classifier(ClassifierConfig.model_validate(data), tmp)
        bundle = load_bundle(Path(tmp) / "model.bin")
        scores = bundle.positive_proba(texts)
    right = (scores >= bundle.threshold) == y
    order = np.argsort(-scores, kind="stable")  # the accuracy of predicting the top k positive, every k
    correct = np.r_[0, np.cumsum(np.where(y[order], 1, -1))] + (~y).sum()
    return {"oracle": correct.max() / len(y), "variant": name, "dev": report["dev"]["accuracy"],
            "test": report["test"]["accuracy"],
            "bbc": right.mean(), "bbc_a": right[half_a].mean(), "bbc_b": right[~half_a].mean(),
            "bbc_auc": roc_auc(y, scores), "threshold": bundle.threshold, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="variant names (substrings) to run")
    args = parser.parse_args()
    texts, y, half_a = bbc()
    print(f"BBC: {len(texts)} articles, half A {half_a.sum()}, half B {(~half_a).sum()}")
    print(f"| {'change':<46} | dev acc | BBC acc | half A | half B | BBC ROC-AUC | best on BBC | threshold | s |")
    print(f"|{'-' * 48}|---|---|---|---|---|---|---|---|")
    for name, changes in VARIANTS.items():
        if args.only and not any(part in name for part in args.only):
            continue
        r = run(name, variant(**changes), texts, y, half_a)
        print(f"| {name:<46} | {r['dev']:.4f} | {r['bbc']:.4f} | {r['bbc_a']:.4f} | {r['bbc_b']:.4f} "
              f"| {r['bbc_auc']:.4f} | {r['oracle']:.4f} | {r['threshold']:.3f} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
