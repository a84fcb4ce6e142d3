"""Benchmark: the quality classifier on CLEANEVAL-derived page lines (content vs boilerplate).

Trains configs/classifier-quality.yaml (or loads --model DIR) and, with `--backends fasttext
logistic` (the default), the same sources with `model: logistic`; prints for each
- line-level ROC-AUC of the classifier's score next to a words-per-line baseline (~0.81),
- the page-level pairwise win rate: main text (content lines joined) scored above the same
  page's boilerplate (boilerplate lines joined),
- training and scoring seconds.

    .venv/bin/python bench/quality_lines.py [--quick] [--model models/quality] [--backends fasttext]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The repo root instead of bench/ (the script's folder, whose filters.py and tokenize.py would
# shadow the `filters` package and the standard library's tokenize).
sys.path[0] = str(REPO)

import argparse
import gzip
import json
import tempfile
import time

import numpy as np
import yaml

from filters.classifier import ClassifierConfig, load_bundle, train_classifier
from filters.classifier_metrics import roc_auc

DATA = REPO.parent / "shared" / "data"


def train(output: Path, backend: str = "fasttext") -> float:
    """Train the quality recipe (with `model: backend`) into `output`; return the seconds taken."""
    data = yaml.safe_load((REPO / "configs" / "classifier-quality.yaml").read_text())
    data["model"] = backend
    for source in data["sources"]:
        source["path"] = source["path"].replace("../shared/data", str(DATA))
    start = time.perf_counter()
    train_classifier(ClassifierConfig.model_validate(data), output)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first 100 pages")
    parser.add_argument("--model", help="a trained quality model directory (default: train the recipe)")
    parser.add_argument("--backends", nargs="+", choices=["fasttext", "logistic"], default=["fasttext", "logistic"],
                        help="train the recipe with these `model:` backends (ignored with --model)")
    args = parser.parse_args()
    path = DATA / "quality_lines_cleaneval_derived" / "lines_labeled.jsonl.gz"
    pages = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    pages = pages[:100] if args.quick else pages
    lines = [line for page in pages for line in page["lines"]]
    labels = np.array([y for page in pages for y in page["labels"]], dtype=bool)
    words = np.array([len(line.split()) for line in lines])
    print(f"{len(pages)} pages, {len(lines)} lines ({labels.mean():.1%} content); "
          f"words-per-line ROC-AUC {roc_auc(labels, words):.4f}")
    for backend in [None] if args.model else args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(args.model) if args.model else Path(tmp)
            trained = "" if args.model else f"trained in {train(model_dir, backend):.1f}s, "
            bundle = load_bundle(model_dir / "model.bin")
            start = time.perf_counter()
            scores = bundle.positive_proba(lines)
            seconds = time.perf_counter() - start
            wins = total = 0
            for page in pages:
                main_text = "\n".join(x for x, y in zip(page["lines"], page["labels"]) if y)
                boilerplate = "\n".join(x for x, y in zip(page["lines"], page["labels"]) if not y)
                if main_text and boilerplate:
                    a, b = bundle.positive_proba([main_text, boilerplate])
                    wins, total = wins + (a > b), total + 1
            print(f"{backend or args.model}: {trained}lines scored in {seconds:.2f}s; line-level ROC-AUC "
                  f"{roc_auc(labels, scores):.4f}; page-level: main text above boilerplate on {wins}/{total} pages "
                  f"({wins / total:.1%})", flush=True)


if __name__ == "__main__":
    main()
