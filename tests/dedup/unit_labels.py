"""Labelling what a unit dedup stage removed against a page's gold main text, shared by
bench/units.py and tests/dedup/test_units_real.py.

The gold main texts of the three HTML extraction sets of ../shared/data (CLEANEVAL, Dragnet,
Zyte/Scrapinghub) by page file name; a unit's label, `main` or `boilerplate`, by the rule that
../shared/data/quality_lines_cleaneval_derived labels lines with; the units a stage removed from
a text (given its output text); and, per text, the units and characters of each label, in all
and removed, as a Counter keyed by (measure, label) so that texts add up:

    counts = sum((tally(before, after, Gold(gold).label, r"\\n") for ...), Counter())
    counts["removed_chars", "main"] / counts["chars", "main"]
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

DATASETS = {"cleaneval": "extraction_cleaneval", "dragnet": "extraction_dragnet",
            "zyte": "article_extraction_scrapinghub"}
LABELS = ("main", "boilerplate")
WORD = re.compile(r"\w+")
GOLD_MARKER = re.compile(r"^\s*<(p|h|l)>\s*", re.IGNORECASE | re.MULTILINE)  # CLEANEVAL's <p>, <h>, <l>


def _decode(raw: bytes) -> str:
    return raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8", "replace")


def _gold_file(path: Path) -> str:
    """A CLEANEVAL or Dragnet gold file without its `URL:` line and CLEANEVAL's block markers."""
    text = _decode(gzip.decompress(path.read_bytes()))
    return GOLD_MARKER.sub("", text.split("\n", 1)[-1] if text.startswith("URL:") else text)


def gold_texts(data: Path, dataset: str) -> dict[str, str]:
    """Gold main text by HTML file name (`dev-1.html.gz`) of a dataset of `DATASETS` under `data`;
    pages without a gold text are left out."""
    folder = data / DATASETS[dataset]
    pages = sorted((folder / "html").glob("*.html.gz"))
    if dataset == "zyte":
        truth = json.loads((folder / "ground-truth.json").read_text())
        return {p.name: truth[p.name.split(".")[0]]["articleBody"] for p in pages}
    golds = {p.name: folder / "gold" / p.name.replace(".html.gz", ".txt.gz") for p in pages}
    return {name: _gold_file(path) for name, path in golds.items() if path.exists()}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class Gold:
    """A page's gold main text, labelling units as ../shared/data/quality_lines_cleaneval_derived
    labels lines: 3+ words are main text when >= 60% of their word trigrams occur in the gold text;
    1-2 words when they occur in it (that set's neighbouring-line condition left out)."""

    def __init__(self, text: str):
        tokens = words(text)
        self.padded = f" {' '.join(tokens)} "
        self.trigrams = {tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)}

    def label(self, unit: str) -> str:
        tokens = words(unit)
        if len(tokens) >= 3:
            grams = [tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)]
            main = sum(g in self.trigrams for g in grams) >= 0.6 * len(grams)
        else:
            main = f" {' '.join(tokens)} " in self.padded
        return "main" if main else "boilerplate"


def removed_units(before: str, after: str, splitter: str) -> list[str]:
    """The units of `before` (split on the regex `splitter`) that are not in `after`, a stage's
    output that keeps the others in order. Blank units are never removed, and blank units of
    `after` are skipped: a paragraph stage's output measured in lines has blank lines between
    its paragraphs."""
    kept = [u.strip() for u in re.split(splitter, after) if u.strip()]
    out, k = [], 0
    for unit in re.split(splitter, before):
        if k < len(kept) and unit.strip() == kept[k]:
            k += 1
        elif unit.strip():
            out.append(unit)
    return out


def tally(before: str, after: str, label: Callable[[str], str], splitter: str) -> Counter:
    """Units and characters of `before` per label, in all (`units`, `chars`) and removed by the
    stage that wrote `after` (`removed_units`, `removed_chars`); units without a word are left out."""
    counts: Counter = Counter()
    for prefix, units in (("", re.split(splitter, before)), ("removed_", removed_units(before, after, splitter))):
        for unit in units:
            if words(unit):
                kind = label(unit)
                counts[f"{prefix}units", kind] += 1
                counts[f"{prefix}chars", kind] += len(unit)
    return counts
