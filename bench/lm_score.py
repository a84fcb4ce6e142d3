"""Benchmark: perplexity under the reference LM (`lm_score`) as a quality signal, next to the
fastText quality classifier and words-per-line, on CLEANEVAL-derived page lines (content = 1,
boilerplate = 0; ../shared/data/quality_lines_cleaneval_derived).

Prints one table:
- line-level ROC-AUC: every page line scored alone;
- page-level ROC-AUC: each page's main text (its content lines joined) and its boilerplate
  (the other lines joined) as two documents, labelled 1 and 0;
- page-level win rate: main text scored above the same page's boilerplate;
- docs/s per worker: whole pages (all lines joined) scored on one thread, as one Dask worker
  process scores them (`lm_score` at its default max_tokens 256, fastText on up to 1 MB).

    .venv/bin/python bench/lm_score.py --lm out/lm-reference [--quality models/quality] [--quick]

Without --lm the reference LM is built with `make lm-reference`'s two commands into a temporary
folder; without --quality configs/classifier-quality.yaml is trained (bench/quality_lines.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # the repo root, not bench/ (whose filters.py would shadow the package)

import argparse
import gzip
import json
import subprocess
import tempfile
import time

import numpy as np
import torch
import yaml

from bench.quality_lines import train as train_quality
from filters.classifier import load_bundle
from filters.classifier_metrics import roc_auc
from filters.lm_score import ReferenceLM

DATA = REPO.parent / "shared" / "data"
MAX_TOKENS = 256


def build_reference(folder: Path) -> Path:
    """`make lm-reference` into `folder`."""
    thresher = [sys.executable, "-m", "pipeline.cli"]
    config = yaml.safe_load((REPO / "configs" / "lm-reference-data.yaml").read_text())
    config["inputs"][0]["path"] = str(DATA / "general_wikitext2" / "*.txt.gz")
    (folder / "data.yaml").write_text(yaml.safe_dump(config))
    subprocess.run([*thresher, "run", str(folder / "data.yaml"), "--output", str(folder / "data")],
                   check=True, cwd=REPO)
    subprocess.run([*thresher, "train", str(REPO / "configs" / "lm-reference.yaml"), "--output", str(folder / "lm"),
                    f"--set=data.manifest={folder / 'data'}"], check=True, cwd=REPO)
    return folder / "lm"


def load_pages(quick: bool) -> list[dict]:
    path = DATA / "quality_lines_cleaneval_derived" / "lines_labeled.jsonl.gz"
    pages = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    return pages[:100] if quick else pages


def words_per_line(text: str) -> float:
    lines = [line for line in text.splitlines() if line.strip()]
    return sum(len(line.split()) for line in lines) / len(lines) if lines else 0.0


def page_documents(pages: list[dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Main text and boilerplate of each page that has both: texts, labels, page index."""
    texts, labels, index = [], [], []
    for i, page in enumerate(pages):
        main_text = "\n".join(x for x, y in zip(page["lines"], page["labels"]) if y)
        boilerplate = "\n".join(x for x, y in zip(page["lines"], page["labels"]) if not y)
        if main_text and boilerplate:
            texts += [main_text, boilerplate]
            labels += [1, 0]
            index += [i, i]
    return texts, np.array(labels, dtype=bool), np.array(index)


def win_rate(scores: np.ndarray) -> float:
    """Share of pages whose main text (even rows) scores above its boilerplate (odd rows)."""
    return float(np.mean(scores[0::2] > scores[1::2]))


def timed(score, texts: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    values = np.asarray(score(texts), dtype=np.float64)
    return values, len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", help="reference LM: a `thresher train` output (default: build the recipe)")
    parser.add_argument("--quality", help="quality classifier folder (default: train the recipe)")
    parser.add_argument("--quick", action="store_true", help="only the first 100 pages")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one worker process, one thread
    with tempfile.TemporaryDirectory() as tmp:
        lm_dir = Path(args.lm) if args.lm else build_reference(Path(tmp))
        quality_dir = Path(args.quality) if args.quality else Path(tmp) / "quality"
        if not args.quality:
            print(f"trained configs/classifier-quality.yaml in {train_quality(quality_dir):.1f}s")
        reference, bundle = ReferenceLM(lm_dir), load_bundle(quality_dir / "model.bin")
        scorers = {
            "lm_score (mean log-prob)": lambda texts: [lp for lp, _, _ in reference.log_probs(texts, MAX_TOKENS, 32)],
            "fastText quality": bundle.positive_proba,
            "words-per-line": lambda texts: [words_per_line(t) for t in texts],
        }
        pages = load_pages(args.quick)
        lines = [line for page in pages for line in page["lines"]]
        line_labels = np.array([y for page in pages for y in page["labels"]], dtype=bool)
        docs, doc_labels, _ = page_documents(pages)
        whole_pages = ["\n".join(page["lines"]) for page in pages]
        print(f"{len(pages)} pages, {len(lines)} lines ({line_labels.mean():.1%} content), "
              f"{len(docs) // 2} pages with main text and boilerplate")
        print(f"{'signal':<26} {'line AUC':>9} {'page AUC':>9} {'page wins':>10} {'docs/s/worker':>14}")
        for name, score in scorers.items():
            line_scores = np.nan_to_num(np.asarray(score(lines), dtype=np.float64), nan=-1e9)
            doc_scores = np.nan_to_num(np.asarray(score(docs), dtype=np.float64), nan=-1e9)
            _, rate = timed(score, whole_pages)
            print(f"{name:<26} {roc_auc(line_labels, line_scores):>9.4f} {roc_auc(doc_labels, doc_scores):>9.4f} "
                  f"{win_rate(doc_scores):>10.1%} {rate:>14.1f}")


if __name__ == "__main__":
    main()
