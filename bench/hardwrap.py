"""Benchmark: the heuristic filters on hard-wrapped newswire and on WikiText, before (the v1
names, whose decisions are unchanged) and after (the `*_v2` names, which unwrap hard-wrapped
text and undo WikiText's markup: filters/layout.py).

Data, read with thresher's own readers: ../shared/data/financial_reuters21578 (every story with
a body, `text_field: body`) and ../shared/data/general_wikitext2 (one document per article,
`separator: "^ = [^=].* = $"`). Each filter runs alone and unscoped, with its default
thresholds, then the four in the FineWeb recipe's order (C4 hands its cleaned text on). Prints,
per filter: the share of stories kept, the median and mean share of a kept story's characters
that the output keeps (non-whitespace characters, as unwrapping only moves whitespace), the
same on the "prose" stories (at least 5 sentences and 50 words besides the closing "Reuter",
the page minimums of C4 and Gopher), and the WikiText-2 articles kept.

    .venv/bin/python bench/hardwrap.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The repo root instead of bench/ (the script's folder, whose filters.py and tokenize.py would
# shadow the `filters` package and the standard library's tokenize).
sys.path[0] = str(REPO)

import re
import statistics
import time

from filters.layout import wrap_width
from filters.text import sentence_count
from filters.words import words
from pipeline.options import InputSpec, ReadOptions
from pipeline.readers import list_files, read_file
from pipeline.record import Document
from pipeline.stage import Reject, build_stage
from pipeline.stats import StageStats

DATA = REPO.parent / "shared" / "data"
REUTERS = InputSpec(path=str(DATA / "financial_reuters21578" / "*.jsonl.gz"), format="jsonl", source="reuters",
                    text_field="body")
WIKITEXT = InputSpec(path=str(DATA / "general_wikitext2" / "*.txt.gz"), format="text", source="wikitext",
                     separator="^ = [^=].* = $")
FILTERS = ("c4_quality", "gopher_repetition", "gopher_quality", "fineweb_quality")
RECIPE_ORDER = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
SIGN_OFF = re.compile(r"\s*\breuter\s*$", re.IGNORECASE)


def documents(spec: InputSpec) -> list[Document]:
    """The documents thresher's reader makes of `spec` (stories without a body are rejected)."""
    return [item for file in list_files(spec) for item in read_file(file, spec, ReadOptions())
            if isinstance(item, Document)]


def is_prose(text: str) -> bool:
    """At least 5 sentences and 50 words once the "Reuter" sign-off is set aside."""
    return sentence_count(SIGN_OFF.sub("", text)) >= 5 and len(words(text)) >= 50


def visible_chars(text: str) -> int:
    return len(text) - sum(map(str.isspace, text))


def run_chain(names: tuple[str, ...], docs: list[Document]) -> tuple[list[float | None], float]:
    """Per document: the share of its visible characters the chain keeps (None: dropped), and seconds."""
    stages = [build_stage(name, {}) for name in names]
    shares: list[float | None] = []
    start = time.perf_counter()
    for doc in docs:
        out = doc
        for stage in stages:
            out = stage.process_document(out, StageStats())
            if isinstance(out, Reject):
                break
        shares.append(None if isinstance(out, Reject) else visible_chars(out.text) / max(visible_chars(doc.text), 1))
    return shares, time.perf_counter() - start


def summary(shares: list[float | None]) -> str:
    kept = [s for s in shares if s is not None]
    if not kept:
        return "   0.0% |      - |      -"
    return f"{len(kept) / len(shares):6.1%} | {statistics.median(kept):6.1%} | {statistics.mean(kept):6.1%}"


def main() -> None:
    reuters, wikitext = documents(REUTERS), documents(WIKITEXT)
    prose = [is_prose(doc.text) for doc in reuters]
    wrapped = sum(wrap_width(doc.text) is not None for doc in reuters)
    print(f"Reuters-21578: {len(reuters):,} stories with a body, {sum(prose):,} of them prose, "
          f"{wrapped:,} detected as hard-wrapped; WikiText-2: {len(wikitext)} articles\n")
    print("| filter | Reuters kept | chars kept, median | mean | prose kept | median | mean | "
          "WikiText kept | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [((name,), name) for name in FILTERS] + [(RECIPE_ORDER, "the four, recipe order")]
    for names, label in rows:
        for suffix in ("", "_v2"):
            shares, seconds = run_chain(tuple(n + suffix for n in names), reuters)
            wiki, _ = run_chain(tuple(n + suffix for n in names), wikitext)
            wiki_kept = sum(s is not None for s in wiki)
            print(f"| {label + (' v2' if suffix and len(names) > 1 else suffix)} | {summary(shares)} | "
                  f"{summary([s for s, p in zip(shares, prose) if p])} | {wiki_kept}/{len(wiki)} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
