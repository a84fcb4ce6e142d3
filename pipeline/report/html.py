"""Render `stats.json` as one self-contained HTML page (Jinja2, autoescaped).

Plots are inline SVG (`plots.py`), styles are inline, there is no script and no external
resource of any kind, so the page opens offline and makes no network request. Every section
is always present (`<section id=... data-section=...>`); one whose stage did not run says so.
The page opens with the warnings (`stats["warnings"]`: sources and domains that curation
nearly emptied, uninformative classifier scores, incomplete runs, ...).
Numbers in tables carry their exact value in `data-value`, which tests compare with the
manifests. In a run's report every example and sample document shows the `thresher trace`
command that prints its lineage (`pipeline.trace`).

    html = render_html(json.load(open("out/demo/report/stats.json")))
"""

from __future__ import annotations

import shlex
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.report import checks, plots

TEMPLATES = Path(__file__).parent / "templates"
SECTIONS = ("warnings", "overview", "funnel", "removals", "composition", "languages", "lengths", "scores", "dedup",
            "shards", "config", "notes")


def _number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{int(value):,}"


def _pct(value) -> str:
    return "–" if value is None else f"{value:.3g}%"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(num=_number, pct=_pct, human=plots.human, shell=shlex.quote)
    return env


def dedup_views(entries: list[dict]) -> list[dict]:
    """What to show per dedup stage: its audit, unless a later stage repeats it (remove_duplicates
    carries duplicate_clusters' audit: shown once, where documents were removed), and the LSH
    S-curve beside the audit that holds it (else at the first stage that has it)."""
    audits = [e.get("audit") for e in entries]
    curves = [(a or {}).get("lsh") for a in audits]
    views, shown_lsh = [], []
    for i, entry in enumerate(entries):
        audit = audits[i]
        show_audit = audit is not None and audit not in audits[i + 1:]
        lsh = curves[i] if show_audit and curves[i] else entry.get("lsh")
        if not (show_audit and curves[i]) and (lsh in curves or lsh in shown_lsh):
            lsh = None  # an audit shows this S-curve (or it was shown already)
        if lsh is not None:
            shown_lsh.append(lsh)
        views.append({**entry, "show_audit": show_audit,
                      "cluster_svg": plots.cluster_plot(audit, f"dedup-{i}") if show_audit else None,
                      "s_curve_svg": plots.s_curve_plot(lsh, (audit or {}).get("false_positives"), f"lsh-{i}")
                      if lsh is not None else None})
    return views


def _sets(stats: dict) -> dict[str, dict]:
    """before / after document sets (one entry when they are the same set)."""
    roles = stats["roles"]
    sets = stats["document_sets"]
    if roles.get("before") == roles.get("after"):
        return {"documents": sets[roles["after"]]} if roles.get("after") in sets else {}
    return {role: sets[roles[role]] for role in ("before", "after") if roles.get(role) in sets}


def _scores(stats: dict) -> tuple[dict, str | None]:
    """The score histograms to plot and the set they come from (the select stage's input
    when it was measured, else the last set that has scores)."""
    roles, sets = stats["roles"], stats["document_sets"]
    for role in ("scored", "after", "before"):
        name = roles.get(role)
        if name in sets and sets[name]["scores"]:
            return sets[name]["scores"], name
    return {}, None


def _shares(sets: dict[str, dict], column: str, removals: dict | None) -> dict[str, dict[str, int]]:
    """role -> value -> documents of `column`; a source or domain that curation removed
    entirely (`label_removals`) is kept as a 0 in the last set, so it still has a row."""
    series = {role: {k: v["documents"] for k, v in s["categories"].get(column, {}).items()} for role, s in sets.items()}
    if series and removals:
        last = series[list(series)[-1]]
        for row in removals.get(column, []):
            last.setdefault(row["name"], 0)
    return series


def _language_series(stats: dict, sets: dict[str, dict]) -> dict[str, dict[str, int]]:
    """before: the documents entering the stage that identified languages, by the language it
    found (`sections.languages`); after: the final documents. Without a language stage, the
    languages the measured sets carry."""
    found = stats.get("languages")
    if found:
        return {"before": found["before"], "after": found["after"]}
    return _shares(sets, "language", None)


def _ordered(series: dict[str, dict[str, int]]) -> list[str]:
    """Every value of the series, the last series' most common first."""
    return list(dict.fromkeys(k for counts in reversed(list(series.values())) for k in counts))


def render_html(stats: dict) -> str:
    sets = _sets(stats)
    scores, scores_set = _scores(stats)
    removals = stats.get("label_removals")
    languages = _language_series(stats, sets)
    flags = {c["column"]: checks.verdict(c) for c in stats.get("score_checks", []) if c["uninformative"]}
    view = {
        "s": stats,
        "sections": SECTIONS,
        "sets": sets,
        "after": stats["document_sets"].get(stats["roles"].get("after")),
        "scores": scores,
        "language_series": languages,
        "languages": _ordered(languages),
        "scores_set": scores_set,
        "rules": checks,
        "dedup": dedup_views(stats["dedup"]),
        "svg": {
            "funnel": plots.funnel_plot(stats["funnel"]),
            "removals": plots.removals_plot(stats["removals"]),
            "domains": plots.shares_plot(_shares(sets, "domain", removals), "domain", "domains"),
            "sources": plots.shares_plot(_shares(sets, "source", removals), "source", "sources"),
            "mixture": plots.mixture_plot(stats["mixture"], stats["shards"]),
            "languages": plots.shares_plot(languages, "language", "languages"),
            "lengths": plots.lengths_plot(sets),
            "scores": plots.scores_plot(scores, stats["selection"], flags),
            "shards": plots.shards_plot(stats["shards"]),
            "timings": plots.timings_plot(stats["timings"]),
        },
    }
    return _environment().get_template("report.html.j2").render(**view)
