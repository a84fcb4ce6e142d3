"""Paragraph and line dedup benchmark: `paragraph_dedup` and `line_dedup` (dedup/units.py).

Throughput: each stage on a 2-worker LocalCluster over real text (the Reuters-21578 stories,
WikiText-2 paragraphs and the CC 2019 web sample), the read stage run once and the stage rerun
from scratch --runs times after an untimed warm-up run (its wall time from its manifest), next to
a plain single-process pass in the same run (a Python set of each unit's lower-cased,
whitespace-collapsed text, first occurrence kept, texts rebuilt), whose output texts must equal
the stage's. Medians, ratios.

Quality: on the real HTML pages of ../shared/data (CLEANEVAL 517, Dragnet 294, Zyte/Scrapinghub
127; each with its human main text), two views of every page are deduplicated across the pages
of its dataset: `page`, all visible text (html-text with layout: blocks between blank lines), what
a pipeline without main-text extraction dedups; and `extracted`, trafilatura's main text (what
the `extract` stage keeps; one paragraph per line). A unit counts as main text when its words
(lower-cased \\w+) occur in the page's gold text, else as boilerplate. Printed per dataset, view
and stage: the share of boilerplate characters removed and of main-text characters lost
(min_chars_after_dedup: 0, so no document is dropped whole). Pages are parsed once into
.bench/units/.

    .venv/bin/python bench/units.py            # 3 runs
    .venv/bin/python bench/units.py --quick    # a quarter of the throughput corpus, 1 run
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/units.py` puts bench/ first on sys.path, where bench/tokenize.py would shadow the
# standard library's tokenize: keep bench/ last.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(REPO), str(BENCH)]

import argparse
import gzip
import json
import multiprocessing
import re
import shutil
import statistics
import time
from collections import Counter

import pyarrow.parquet as pq

from tests.dedup.unit_labels import DATASETS, LABELS, Gold, gold_texts, tally

DATA = REPO.parent / "shared" / "data"
CACHE = REPO / ".bench" / "units"
STAGES = {"paragraph_dedup": r"\n{2,}", "line_dedup": r"\n"}
JOINERS = {"paragraph_dedup": "\n\n", "line_dedup": "\n"}


# -- data -------------------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict]:
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt") as f:
        return [json.loads(line) for line in f]


def throughput_corpus(quick: bool) -> Path:
    path = CACHE / ("corpus-quick.jsonl" if quick else "corpus.jsonl")
    if not path.exists():
        reuters = [r["body"] for r in read_jsonl(DATA / "financial_reuters21578" / "reuters21578.jsonl.gz")
                   if r.get("body")]
        with gzip.open(DATA / "general_wikitext2" / "wikitext-2-v1.valid.tokens.txt.gz", "rt") as f:
            wiki = [line.strip() for line in f if line.strip()]
        wiki = ["\n\n".join(wiki[i:i + 8]) for i in range(0, len(wiki), 8)]  # articles-ish: 8 paragraphs
        web = [d["text"] for d in read_jsonl(next((DATA / "web_text_cc2019_sample").glob("*.jsonl.gz")))]
        texts = reuters + wiki + web
        texts = texts[: len(texts) // 4] if quick else texts
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def html_pages() -> dict[str, list[tuple[bytes, str]]]:
    """(page bytes, gold main text) per dataset."""
    return {name: [(gzip.decompress((DATA / folder / "html" / page).read_bytes()), gold)
                   for page, gold in sorted(gold_texts(DATA, name).items())]
            for name, folder in DATASETS.items()}


def page_views(raw: bytes) -> tuple[str, str]:
    """(all visible text with blank lines between blocks, trafilatura's main text) of a page."""
    import html_text
    import trafilatura

    from pipeline.decode import DecodeFailure, decode_html

    try:
        html, _ = decode_html(raw)
    except DecodeFailure:
        return "", ""
    html = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", html)  # lxml refuses control characters
    page = re.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in html_text.extract_text(
        html, guess_layout=True).splitlines())).strip()
    return page, trafilatura.extract(html) or ""


def quality_data() -> Path:
    """JSONL per dataset and view (`text`, `gold`), parsed once in parallel processes."""
    root = CACHE / "pages"
    if not (root / "_done").exists():
        root.mkdir(parents=True, exist_ok=True)
        print(f"parsing the HTML pages into {root} ...", flush=True)
        for name, pages in html_pages().items():
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                views = pool.map(page_views, [raw for raw, _ in pages], chunksize=8)
            for i, view in enumerate(("page", "extracted")):
                (root / f"{name}-{view}.jsonl").write_text("".join(
                    json.dumps({"text": v[i], "gold": gold}) + "\n" for v, (_, gold) in zip(views, pages)))
        (root / "_done").write_text("ok")
    return root


# -- running a stage --------------------------------------------------------------------------

def stage_run(client, corpus: Path, out: Path, stage: str) -> tuple[float, list[str]]:
    """(the stage's wall seconds, output texts in input order); the read stage is reused."""
    from pipeline.config import parse_config
    from pipeline.runner import Runner

    shutil.rmtree(out / f"01-{stage}", ignore_errors=True)
    config = parse_config({"output": str(out), "inputs": [{"path": str(corpus), "format": "jsonl", "source": "b"}],
                           "read": {"max_docs_per_part": 2000},
                           "stages": [{stage: {"min_chars_after_dedup": 0}}]})
    Runner(config, client, progress=False).run()
    folder = out / f"01-{stage}"
    seconds = json.loads((folder / "_manifest.json").read_text())["wall_seconds"]
    rows = []
    for part in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(part, columns=["id", "text"])
        rows += zip(table["id"].to_pylist(), table["text"].to_pylist())
    return seconds, [text for _, text in sorted(rows, key=lambda r: int(r[0].rsplit(":", 1)[1]))]


def plain_pass(texts: list[str], stage: str) -> tuple[list[str], int]:
    """The baseline: first occurrence of each normalised unit kept, in corpus order."""
    splitter, joiner, seen, out, removed = re.compile(STAGES[stage]), JOINERS[stage], set(), [], 0
    for text in texts:
        units, kept = splitter.split(text), []
        for unit in units:
            key = " ".join(unit.lower().split())
            if key and key in seen:
                removed += 1
                continue
            seen.add(key)
            kept.append(unit)
        out.append(joiner.join(kept).strip() if len(kept) < len(units) else text)
    return out, removed


def throughput(client, runs: int, quick: bool) -> None:
    corpus = throughput_corpus(quick)
    texts = [json.loads(line)["text"] for line in corpus.open()]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    print(f"throughput corpus: {len(texts)} documents, {megabytes:.1f} MB (Reuters, WikiText-2, CC 2019 web)")
    for stage in STAGES:
        ours, plain = [], []
        stage_run(client, corpus, CACHE / "out", stage)  # warm-up, not timed: the workers' imports
        for _ in range(runs):
            seconds, output = stage_run(client, corpus, CACHE / "out", stage)
            ours.append(seconds)
            start = time.perf_counter()
            expected, removed = plain_pass(texts, stage)
            plain.append(time.perf_counter() - start)
        a, b = statistics.median(ours), statistics.median(plain)
        same = sum(x == y for x, y in zip(output, expected))
        print(f"  {stage:<16} thresher 2 workers {len(texts) / a:7.0f} docs/s {megabytes / a:5.2f} MB/s | "
              f"plain 1 process {len(texts) / b:7.0f} docs/s {megabytes / b:5.2f} MB/s | ratio {b / a:.2f}x | "
              f"{removed} units removed, {same}/{len(texts)} texts equal", flush=True)


# -- quality ----------------------------------------------------------------------------------

def shares(docs: list[tuple[str, list | Gold]], output: list[str], stage: str) -> str:
    """`docs`: (text, one label per unit or a Gold); the removed and total characters by label."""
    counts = Counter()
    for (text, labels), after in zip(docs, output):
        units = re.split(STAGES[stage], text)
        label = labels.label if isinstance(labels, Gold) else dict(zip(units, labels)).__getitem__
        counts += tally(text, after, label, STAGES[stage])
    share = {k: counts["removed_chars", k] / max(counts["chars", k], 1) for k in LABELS}
    return (f"boilerplate removed {share['boilerplate']:6.1%} of {counts['chars', 'boilerplate']:>9,} chars | "
            f"main text lost {share['main']:6.2%} of {counts['chars', 'main']:>9,} chars")


def quality(client) -> None:
    root = quality_data()
    print("quality: characters removed, by unit label (main text / boilerplate)")
    labelled = read_jsonl(DATA / "quality_lines_cleaneval_derived" / "lines_labeled.jsonl.gz")
    path = CACHE / "pages" / "cleaneval-labelled-lines.jsonl"
    path.write_text("".join(json.dumps({"text": "\n".join(p["lines"])}) + "\n" for p in labelled))
    _, output = stage_run(client, path, CACHE / "out-pages" / path.stem, "line_dedup")
    docs = [("\n".join(p["lines"]), ["main" if x else "boilerplate" for x in p["labels"]]) for p in labelled]
    print(f"  {'cleaneval-lines (labels of quality_lines_cleaneval_derived)':<44} line_dedup       "
          f"{shares(docs, output, 'line_dedup')}", flush=True)
    for data in sorted(root.glob("*-page.jsonl")) + sorted(root.glob("*-extracted.jsonl")):
        docs = [(d["text"], Gold(d["gold"])) for d in map(json.loads, data.open())]
        # trafilatura's main text has one paragraph per line and no blank lines: paragraph_dedup
        # would compare whole documents there.
        for stage in STAGES if data.stem.endswith("-page") else ("line_dedup",):
            _, output = stage_run(client, data, CACHE / "out-pages" / data.stem, stage)
            print(f"  {data.stem:<44} {stage:<16} {shares(docs, output, stage)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the throughput corpus, 1 run")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs per stage (medians)")
    args = parser.parse_args()
    from pipeline.cluster import open_client

    with open_client(workers=2) as client:
        throughput(client, 1 if args.quick else args.runs, args.quick)
        quality(client)


if __name__ == "__main__":
    main()
