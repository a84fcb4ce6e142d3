"""The demo's fastText classifiers, trained from the demo sample itself before the run.

- domain (financial vs general): the paragraphs of the corpus's financial and general articles,
  written to `sample/labels/domain.jsonl`;
- quality (DCLM-style, `hq` vs `lq`): the main text trafilatura extracts from the demo crawl's
  pages against the page lines extraction throws away (navigation, cookie banners, footers).

Both train in seconds with `filters.classifier.train_classifier`, the code behind
`thresher classifier train`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.demo.corpus import FINANCIAL, GENERAL

# Small data, so small models: few dimensions, many epochs, a gentle learning rate.
FASTTEXT = {"dim": 16, "epoch": 25, "lr": 0.2, "wordNgrams": 2, "minCount": 1}


def write_domain_labels(sample: Path) -> Path:
    path = sample / "labels" / "domain.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": p, "label": a.domain}) for a in FINANCIAL + GENERAL for p in (a.title, *a.paragraphs)]
    path.write_text("\n".join(lines) + "\n")
    return path


def classifier_configs(sample: Path) -> dict[str, dict]:
    crawl = str(sample / "crawl" / "crawl-00000.warc.gz")
    return {
        "domain": {"seed": 0, "positive_label": "financial", "split": {"dev": 0.2, "test": 0.0},
                   "fasttext": FASTTEXT, "sources": [
                       {"path": str(write_domain_labels(sample)), "format": "jsonl", "label": "financial",
                        "where": {"label": "financial"}},
                       {"path": str(sample / "labels" / "domain.jsonl"), "format": "jsonl", "label": "general",
                        "where": {"label": "general"}}]},
        "quality": {"seed": 0, "positive_label": "hq", "split": {"dev": 0.2, "test": 0.0},
                    "fasttext": FASTTEXT, "threshold_metric": "none", "sources": [
                        {"path": crawl, "format": "warc", "html_text": "main", "label": "hq", "min_words": 20},
                        {"path": crawl, "format": "warc", "html_text": "boilerplate", "label": "lq",
                         "unit": "line"}]},
    }


def train_demo_models(sample: Path, models: Path) -> dict[str, Path]:
    """Train both classifiers; return {name: model.bin path}."""
    from filters.classifier import ClassifierConfig, train_classifier

    out = {}
    for name, raw in classifier_configs(sample).items():
        train_classifier(ClassifierConfig.model_validate(raw), models / name)
        out[name] = models / name / "model.bin"
    return out
