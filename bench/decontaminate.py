"""Decontamination benchmark: the `decontaminate` stage on 2 workers vs a plain single-process
set lookup, measured in the same run.

Data (../shared/data, real text): the eval sets are 4,000 AG News test items (title +
description) and the paragraphs (20+ words) of 200 BBC articles; the corpus is the Reuters-21578
stories, the WikiText-2 paragraphs, the CC 2019 web sample and the other BBC articles, plus 300
copies of eval items with case, punctuation and line-break noise (150 whole, 150 inside Reuters
stories). Written once to .bench/decontaminate/.

- thresher: `decontaminate` (13-grams, drop mode) in a 2-worker LocalCluster; the read stage runs
  once, then the stage is rerun from scratch --runs times after an untimed warm-up run; its time is the wall time in its
  manifest, which includes building the eval index (one worker task) and checking every part.
- baseline: one process, a Python `set` of the eval 13-grams as tuples of words under the same
  normalisation (`dedup.evalsets.normalized_words`: the filters' words, lowercased, punctuation
  stripped; items of 8-12 words as one whole sequence), then every document's n-grams looked up.
- build: `dedup.evalsets.build_index` (what the stage's index task runs) and the baseline's set,
  both in this process, eval files read included.

Prints docs/s and MB/s (input text) of each, the build times, medians of --runs runs, the ratios,
and whether both flag the same documents.

    .venv/bin/python bench/decontaminate.py            # 3 runs
    .venv/bin/python bench/decontaminate.py --quick    # a quarter of the corpus, 3 runs
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/decontaminate.py` puts bench/ first on sys.path, where bench/tokenize.py would
# shadow the standard library's tokenize: keep bench/ last.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(REPO), str(BENCH)]

import argparse
import gzip
import json
import random
import shutil
import statistics
import time

import pyarrow as pa
import pyarrow.parquet as pq

DATA = REPO.parent / "shared" / "data"
CACHE = REPO / ".bench" / "decontaminate"
NGRAM, MIN_EVAL_WORDS = 13, 8


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for _, line in zip(range(limit or 10**9), f)]


def noisy(text: str, rng: random.Random) -> str:
    words = [w.upper() if rng.random() < 0.1 else w.rstrip(",.;:") if rng.random() < 0.1 else w for w in text.split()]
    return "".join(w + rng.choice([" "] * 8 + ["  ", "\n"]) for w in words).strip()


def build_data(root: Path) -> None:
    rng = random.Random(0)
    agnews = read_jsonl(DATA / "news_agnews_test" / "ag_news_test.jsonl.gz")
    bbc = [d for d in read_jsonl(DATA / "fin_vs_general_bbc" / "documents.jsonl") if not d["exact_duplicate_of"]]
    questions = [{"id": d["id"], "title": d["title"], "description": d["text"].split("\n\n", 1)[1]}
                 for d in agnews[:4000]]
    passages = [{"id": f"{d['id']}#p{i}", "text": p} for d in bbc[:200]
                for i, p in enumerate(d["text"].split("\n\n")[1:]) if len(p.split()) >= 20]
    with (root / "questions.jsonl").open("w") as f:
        f.writelines(json.dumps(q) + "\n" for q in questions)
    pq.write_table(pa.Table.from_pylist(passages), root / "passages.parquet")
    reuters = [r["body"] for r in read_jsonl(DATA / "financial_reuters21578" / "reuters21578.jsonl.gz")
               if r.get("body")]
    with gzip.open(DATA / "general_wikitext2" / "wikitext-2-v1.valid.tokens.txt.gz", "rt") as f:
        wiki = [line.strip() for line in f if len(line.split()) >= 20 and not line.strip().startswith("=")]
    web = [d["text"] for d in read_jsonl(next((DATA / "web_text_cc2019_sample").glob("*.jsonl.gz")))]
    corpus = reuters + wiki + web + [d["text"] for d in bbc[200:]]
    evals = [f"{q['title']}\n\n{q['description']}" for q in questions] + [p["text"] for p in passages]
    for text in rng.sample(evals, 150):
        corpus.append(noisy(text, rng))
    for text in rng.sample(evals, 150):
        host = rng.choice(reuters).split()
        cut = rng.randrange(len(host) + 1)
        corpus.append(" ".join(host[:cut]) + "\n" + noisy(text, rng) + " " + " ".join(host[cut:]))
    rng.shuffle(corpus)
    with (root / "corpus.jsonl").open("w") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in corpus)


def dataset(quick: bool) -> dict:
    root = CACHE / "data"
    if not (root / "_done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        print(f"building the benchmark data in {root} ...", flush=True)
        build_data(root)
        (root / "_done").write_text("ok")
    texts = [json.loads(line)["text"] for line in (root / "corpus.jsonl").open()]
    if quick:
        texts = texts[: len(texts) // 4]
        (root / "corpus-quick.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    eval_sets = [{"name": "agnews", "path": str(root / "questions.jsonl"), "fields": ["title", "description"]},
                 {"name": "bbc", "path": str(root / "passages.parquet"), "format": "parquet"}]
    return {"corpus": root / ("corpus-quick.jsonl" if quick else "corpus.jsonl"), "texts": texts,
            "eval_sets": eval_sets}


# -- the plain baseline -----------------------------------------------------------------------

def baseline_set(eval_sets: list[dict]) -> set[tuple[str, ...]]:
    from dedup.evalsets import EvalSet, eval_items, normalized_words

    grams: set[tuple[str, ...]] = set()
    for spec in eval_sets:
        for _, text in eval_items(EvalSet.model_validate(spec)):
            words = normalized_words(text)[0]
            if len(words) >= NGRAM:
                grams.update(tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1))
            elif len(words) >= MIN_EVAL_WORDS:
                grams.add(tuple(words))
    return grams


def baseline_flags(texts: list[str], grams: set[tuple[str, ...]]) -> list[int]:
    from dedup.evalsets import normalized_words

    lengths = sorted({len(g) for g in grams})
    flagged = []
    for row, text in enumerate(texts):
        words = normalized_words(text)[0]
        if any(tuple(words[i:i + n]) in grams for n in lengths for i in range(len(words) - n + 1)):
            flagged.append(row)
    return flagged


# -- thresher ---------------------------------------------------------------------------------

def stage_run(client, out: Path, data: dict) -> tuple[float, list[int]]:
    """(the stage's wall seconds, corpus rows it dropped), the read stage reused."""
    from pipeline.config import parse_config
    from pipeline.runner import Runner

    for stage in out.glob("01-decontaminate"):
        shutil.rmtree(stage)
    config = parse_config({"output": str(out), "inputs": [{"path": str(data["corpus"]), "format": "jsonl",
                                                          "source": "bench"}],
                           "read": {"max_docs_per_part": 1000},
                           "stages": [{"decontaminate": {"eval_sets": data["eval_sets"], "ngram": NGRAM}}]})
    Runner(config, client, progress=False).run()
    stage = out / "01-decontaminate"
    seconds = json.loads((stage / "_manifest.json").read_text())["wall_seconds"]
    dropped = [int(i.rsplit(":", 1)[1]) - 1 for p in sorted((stage / "rejected").glob("*.parquet"))
               for i in pq.read_table(p, columns=["id"])["id"].to_pylist()]
    return seconds, sorted(dropped)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the corpus")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (medians reported)")
    args = parser.parse_args()
    from dedup.evalsets import EvalSet, build_index
    from pipeline.cluster import open_client

    data = dataset(args.quick)
    texts = data["texts"]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    print(f"corpus: {len(texts)} documents, {megabytes:.1f} MB of text; eval sets: AG News 4,000 items, "
          f"BBC paragraphs of 200 articles; {NGRAM}-grams", flush=True)
    specs = tuple(EvalSet.model_validate(s) for s in data["eval_sets"])
    times: dict[str, list[float]] = {"stage": [], "baseline": [], "index build": [], "set build": []}
    out = CACHE / ("out-quick" if args.quick else "out")
    with open_client(workers=2) as client:
        stage_run(client, out, data)  # warm-up, not timed: the workers' imports and the read stage
        for run in range(args.runs):
            seconds, dropped = stage_run(client, out, data)
            times["stage"].append(seconds)
            times["index build"].append(timed(build_index, specs, NGRAM, MIN_EVAL_WORDS)[0])
            build, grams = timed(baseline_set, data["eval_sets"])
            times["set build"].append(build)
            check, flagged = timed(baseline_flags, texts, grams)
            times["baseline"].append(build + check)
            print(f"run {run + 1}: stage {seconds:.1f}s, baseline {build + check:.1f}s "
                  f"(set {build:.1f}s + lookups {check:.1f}s)", flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    for name, label in (("stage", "thresher decontaminate, 2 workers (index build included)"),
                        ("baseline", "plain set lookup, 1 process (set build included)")):
        print(f"{label:<58} {len(texts) / median[name]:8.0f} docs/s {megabytes / median[name]:6.2f} MB/s "
              f"(median {median[name]:.1f}s)")
    print(f"eval n-gram build: thresher index {median['index build']:.2f}s, Python set {median['set build']:.2f}s "
          f"({len(grams):,} n-grams)")
    checking = median["stage"] - median["index build"]
    print(f"ratio thresher / baseline: {median['baseline'] / median['stage']:.2f}x end to end, "
          f"{(median['baseline'] - median['set build']) / checking:.2f}x checking only "
          f"(stage minus its index build)")
    agree = "the same" if dropped == flagged else f"different ({len(set(dropped) ^ set(flagged))} differ)"
    print(f"flagged: thresher {len(dropped)}, baseline {len(flagged)}: {agree} documents")


if __name__ == "__main__":
    main()
