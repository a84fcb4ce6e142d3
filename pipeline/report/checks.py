"""The report's two data-quality rules (pure functions over measured stats): what share of
each source and domain curation removed, and whether a classifier's scores carry information.

**Removed sources and domains.** A document counts under the label (`source`, `domain`) it
had when a stage removed it (its row in that stage's `rejected/`), or at the end of curation
(the documents entering `mix`, else the last stage's): in = kept + removed. Labels set by a
classifier (`domain` from `classify`) are assigned on the way, so documents removed before it
count under `(none)`; that row is listed only when documents end with no label, and is never
flagged. A label is flagged when curation removed at least `REMOVED_WARN_PCT` (90%) of its
documents, with its top reasons.

**Uninformative classifier scores.** Judged on the score histogram the stats keep for every
stage's documents (exact counts over 50 bins of width 0.02, merged over parts, so no process
holds per-document scores), at the first stage whose documents carry the column (the
classifier's output, before any cut on it), when at least `FLAT_MIN_SCORED` (10) documents
are scored. A window is two adjacent bins: 0.04 wide (±0.02 around its centre), the
histogram's resolution. A classifier is flagged when at least `FLAT_MIN_SHARE` (95%) of its
scored documents fall in one window:

- `quality_score` (a ranking score, what `select` cuts on), in any window: such scores cannot
  rank documents; a cut on them keeps nearly all or nearly none, or separates them by noise;
- `domain_score` (the probability of the label the classifier assigned), in the window around
  0.5 only: scores bunched near 1 are confident labels, not a flat model.

Either column in the window around 0.5 (every score within ±0.02 of 0.5) is "at chance".
`language_score` is not judged: language id's information is the label it assigns, and a score
filtered by `min_score` is high by construction. 10 documents are enough: a model whose scores
do vary puts 95% of 10 documents in one 0.04 window only if it hardly varies on this data.

    rows = label_removals("source", kept, [rejected counts of each stage])
    check = score_check("quality_score", document_set["scores"]["quality_score"], "12-classify")
"""

from __future__ import annotations

from collections import Counter

from pipeline.report.docstats import NONE, SCORE_EDGES

REMOVED_WARN_PCT = 90.0
TOP_REASONS = 5
RANKING_SCORES = ("quality_score",)
LABEL_SCORES = ("domain_score",)
CLASSIFIER_SCORES = RANKING_SCORES + LABEL_SCORES
FLAT_WINDOW_BINS = 2
FLAT_MIN_SHARE = 0.95
FLAT_MIN_SCORED = 10
BIN_WIDTH = float(SCORE_EDGES[1] - SCORE_EDGES[0])


def label_removals(column: str, kept: dict[str, dict], rejected: list[Counter]) -> list[dict]:
    """Per value of `column`: documents in, kept, removed, % removed and the top reasons.
    `kept` is the end set's `categories[column]`; `rejected` holds each stage's
    (column, value, reason) -> documents counts."""
    removed: dict[str, Counter] = {}
    for counts in rejected:
        for (col, value, reason), n in counts.items():
            if col == column:
                removed.setdefault(value, Counter())[reason] += n
    values = set(kept) | set(removed)
    if NONE not in kept:
        values.discard(NONE)  # labelled on the way (by a classifier): not a group of its own
    rows = [_row(v, kept.get(v, {}).get("documents", 0), removed.get(v, Counter())) for v in values]
    return sorted(rows, key=lambda r: (-r["documents_in"], r["name"]))


def _row(name: str, kept: int, reasons: Counter) -> dict:
    gone = sum(reasons.values())
    total = kept + gone
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    return {"name": name, "documents_in": total, "documents_kept": kept, "documents_removed": gone,
            "pct_removed": round(100.0 * gone / total, 4) if total else None,
            "reasons": [{"reason": r, "documents": n, "pct_of_label": round(100.0 * n / total, 4)} for r, n in top]}


def removal_warnings(removals: dict | None) -> list[str]:
    """One line per source or domain that curation removed at least REMOVED_WARN_PCT of."""
    out = []
    for column in ("source", "domain"):
        for row in (removals or {}).get(column, []):
            if row["name"] == NONE or row["pct_removed"] is None or row["pct_removed"] < REMOVED_WARN_PCT:
                continue
            reasons = ", ".join(f"{r['reason']} {r['pct_of_label']:.3g}%" for r in row["reasons"][:3])
            out.append(f"{column} {row['name']}: {row['pct_removed']:.3g}% of its {row['documents_in']:,} documents "
                       f"removed by curation ({row['documents_kept']:,} kept); top reasons: {reasons}")
    return out


def score_check(column: str, score: dict, directory: str) -> dict:
    """How concentrated one score column is: the two adjacent bins holding the most scored
    documents, their share, and whether that makes the scores uninformative."""
    h = score["histogram"]
    counts = Counter({round(lo / BIN_WIDTH): n for lo, n in zip(h["lo"], h["count"])})

    def inside(start: int) -> int:
        return sum(counts[start + k] for k in range(FLAT_WINDOW_BINS))

    scored = score["scored"]
    chance = round(0.5 / BIN_WIDTH) - 1  # bins [0.48, 0.50) and [0.50, 0.52)
    at_chance = scored >= FLAT_MIN_SCORED and inside(chance) >= FLAT_MIN_SHARE * scored
    # The window around 0.5 when it qualifies, else the fullest (the lowest of equals).
    best = chance if at_chance else max(range(len(SCORE_EDGES) - FLAT_WINDOW_BINS), key=lambda i: (inside(i), -i))
    bunched = scored >= FLAT_MIN_SCORED and inside(best) >= FLAT_MIN_SHARE * scored
    flat = (column in CLASSIFIER_SCORES and at_chance) or (column in RANKING_SCORES and bunched)
    lo, hi = round(best * BIN_WIDTH, 4), round((best + FLAT_WINDOW_BINS) * BIN_WIDTH, 4)
    return {"column": column, "dir": directory, "scored": scored, "mean": score["mean"], "window": [lo, hi],
            "share_in_window": round(inside(best) / scored, 6) if scored else None, "uninformative": flat,
            "at_chance": flat and at_chance}


def score_checks(sets: dict[str, dict]) -> list[dict]:
    """`score_check` of every score column, at the first set (in stage order) that has it."""
    seen: dict[str, dict] = {}
    for directory, measured in sets.items():
        for column, score in sorted(measured["scores"].items()):
            if column not in seen:
                seen[column] = score_check(column, score, directory)
    return [seen[c] for c in sorted(seen)]


def verdict(check: dict) -> str:
    if check["at_chance"]:
        return "no information: at chance (~0.5)"
    if check["uninformative"]:
        return "no information: every score alike"
    if check["column"] in LABEL_SCORES:
        return "informative (a label's probability: only chance is flagged)"
    if check["column"] in CLASSIFIER_SCORES:
        return "informative"
    return "not judged (language id's information is its label)"


def score_warnings(checks: list[dict], selection: dict | None) -> list[str]:
    out = []
    for c in checks:
        if not c["uninformative"]:
            continue
        lo, hi = c["window"]
        where = "around chance (0.5): the model cannot tell the classes apart" if c["at_chance"] else \
            "the model gives every document about the same score"
        line = (f"{c['column']} carries no information: {100 * c['share_in_window']:.3g}% of {c['scored']:,} scored "
                f"documents ({c['dir']}) lie within {lo:.2f}–{hi:.2f}, {where}")
        if selection and selection.get("column") == c["column"]:
            line += f"; the cut of {selection['dir']} on it separates documents by noise"
        out.append(line)
    return out
