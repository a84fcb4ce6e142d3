"""Unit tests of the report's rules and the plot pieces they feed (no cluster): kept/removed per
source and domain (a source removed entirely is a row with 0 kept), the uninformative-score
rule on the histograms DocStats keeps, the languages 'before' at the language stage's input,
the stage palette, funnel labels and length-axis ticks."""

import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from pipeline.io import write_parquet
from pipeline.report import checks, plots, sections
from pipeline.report.collect import add_counters, rejected_labels
from pipeline.report.docstats import DocStats
from pipeline.report.sources import StageDir


def stage(tmp_path, index, name, stats=None, **extra):
    d = tmp_path / f"{index:02d}-{name}"
    d.mkdir(parents=True, exist_ok=True)
    return StageDir(index, str(d), {"stage": name, "kind": "map", "params": {}, "parts": [], "wall_seconds": 1.0,
                                    "stats": stats or {}, **extra})


def measured(**columns) -> dict:
    """A measured set with the given categories: column -> {value: documents}."""
    categories = {c: {} for c in ("source", "domain", "language")}
    for column, counts in columns.items():
        categories[column] = {k: {"documents": n, "bytes": 0, "tokens": 0} for k, n in counts.items()}
    return {"categories": categories, "scores": {}}


def scores_of(values, column="quality_score") -> dict:
    s = DocStats()
    s.add(pa.table({"text": ["x"] * len(values), column: values}), np.ones(len(values)))
    return s.to_dict()["scores"][column]


# -- kept and removed per source / domain ---------------------------------------------------

def test_rejected_labels_count_each_label_and_reason(tmp_path):
    t = pa.table({"text": ["a", "b", "c", "d"], "source": ["web", "web", "wiki", None],
                  "domain": ["general"] * 4, "reason": ["g.too_few_words", "g.too_few_words", "c4.x", "c4.x"]})
    write_parquet(t.slice(0, 2), tmp_path / "p0.parquet")
    write_parquet(t.slice(2), tmp_path / "p1.parquet")
    total = add_counters([rejected_labels(str(tmp_path / f"p{i}.parquet")) for i in range(2)])
    assert total[("source", "web", "g.too_few_words")] == 2 and total[("source", "wiki", "c4.x")] == 1
    assert total[("source", "(none)", "c4.x")] == 1 and total[("domain", "general", "c4.x")] == 2
    assert total[("language", "(none)", "g.too_few_words")] == 2  # no language column: "(none)"


def test_a_source_removed_entirely_is_a_row_with_0_kept(tmp_path):
    stages = [stage(tmp_path, 0, "read"), stage(tmp_path, 1, "gopher_quality"), stage(tmp_path, 2, "mix")]
    sets = {"00-read": measured(), "01-gopher_quality": measured(source={"news": 90}, domain={"financial": 90})}
    rejected = {"00-read": Counter({("source", "news", "read.bad_json"): 2}),
                "01-gopher_quality": Counter({("source", "news", "g.too_short"): 8, ("source", "spam", "g.symbols"): 10,
                                              ("source", "spam", "g.too_short"): 30,
                                              ("domain", "general", "g.too_short"): 40})}
    removals = sections.label_removals(stages, sets, rejected)
    assert removals["dir"] == "01-gopher_quality"  # the input of mix: the end of curation
    rows = {r["name"]: r for r in removals["source"]}
    assert (rows["spam"]["documents_in"], rows["spam"]["documents_kept"], rows["spam"]["pct_removed"]) == (40, 0, 100.0)
    assert rows["spam"]["reasons"][0] == {"reason": "g.too_short", "documents": 30, "pct_of_label": 75.0}
    assert (rows["news"]["documents_in"], rows["news"]["documents_removed"]) == (100, 10)
    warnings = checks.removal_warnings(removals)
    assert warnings == [
        "source spam: 100% of its 40 documents removed by curation (0 kept); "
        "top reasons: g.too_short 75%, g.symbols 25%",
        "domain general: 100% of its 40 documents removed by curation (0 kept); top reasons: g.too_short 100%"]


def test_removal_warnings_start_at_90_percent_and_skip_unlabelled():
    rows = checks.label_removals("source", {"a": {"documents": 11}, "b": {"documents": 10}},
                                 [Counter({("source", "a", "r"): 89, ("source", "b", "r"): 90})])
    assert [(r["name"], r["pct_removed"]) for r in rows] == [("a", 89.0), ("b", 90.0)]
    assert [w.split(":")[0] for w in checks.removal_warnings({"source": rows})] == ["source b"]
    # Domains a classifier assigns on the way: removals before it count under "(none)", not a domain.
    domains = checks.label_removals("domain", {"financial": {"documents": 5}},
                                    [Counter({("domain", "(none)", "r"): 50})])
    assert [r["name"] for r in domains] == ["financial"]


# -- uninformative classifier scores ----------------------------------------------------------

def test_scores_all_near_half_are_at_chance():
    rng = np.random.default_rng(0)
    check = checks.score_check("quality_score", scores_of(0.5 + rng.uniform(-0.015, 0.015, 500)), "05-classify")
    assert check["uninformative"] and check["at_chance"] and check["window"] == [0.48, 0.52]
    assert check["share_in_window"] == 1.0
    (line,) = checks.score_warnings([check], {"column": "quality_score", "dir": "06-select"})
    assert line.startswith("quality_score carries no information: 100% of 500 scored documents (05-classify)")
    assert "around chance (0.5)" in line and "06-select" in line


def test_flat_quality_scores_elsewhere_are_uninformative_but_not_chance():
    check = checks.score_check("quality_score", scores_of([0.905] * 100), "05-classify")
    assert check["uninformative"] and not check["at_chance"] and check["window"][0] <= 0.905 < check["window"][1]
    assert "every document about the same score" in checks.score_warnings([check], None)[0]


def test_domain_scores_are_flagged_at_chance_only():
    # domain_score is the probability of the label assigned: bunched near 1 = confident labels.
    at_chance = checks.score_check("domain_score", scores_of([0.503] * 18, "domain_score"), "05-classify")
    assert at_chance["uninformative"] and at_chance["at_chance"]
    confident = checks.score_check("domain_score", scores_of([0.99] * 100, "domain_score"), "05-classify")
    assert not confident["uninformative"] and confident["window"] == [0.96, 1.0]


@pytest.mark.parametrize(("column", "values"), [
    ("quality_score", np.linspace(0.0, 1.0, 200)),            # spread: informative
    ("quality_score", [0.5] * 94 + [0.9] * 6),                 # 94% in the window: below the 95% rule
    ("quality_score", [0.5] * 9),                              # too few scored to judge
    ("language_score", [0.99] * 500),                          # language id: not judged
])
def test_scores_that_are_not_flagged(column, values):
    check = checks.score_check(column, scores_of(list(values), column), "05-classify")
    assert not check["uninformative"] and checks.score_warnings([check], None) == []


def test_score_checks_judge_each_column_where_it_first_appears():
    early, late = {"scores": {"quality_score": scores_of([0.5] * 50)}}, {"scores": {"quality_score": scores_of([1.0])}}
    (check,) = checks.score_checks({"05-classify": early, "06-select": late})
    assert check["dir"] == "05-classify" and check["uninformative"]


# -- languages before / after -------------------------------------------------------------------

def test_languages_before_is_the_language_stage_input(tmp_path):
    stages = [stage(tmp_path, 0, "read"), stage(tmp_path, 1, "extract"), stage(tmp_path, 2, "language"),
              stage(tmp_path, 3, "gopher_quality")]
    sets = {"01-extract": measured(language={"(none)": 100}), "02-language": measured(language={"en": 80}),
            "03-gopher_quality": measured(language={"en": 60})}
    rejected = {"02-language": Counter({("language", "de", "language.language_not_kept"): 15,
                                        ("language", "en", "language.score_below_min"): 5,
                                        ("source", "web", "language.language_not_kept"): 15})}
    found = sections.languages(stages, sets, rejected, "03-gopher_quality")
    assert (found["dir"], found["input_dir"]) == ("02-language", "01-extract")
    assert found["before"] == {"en": 85, "de": 15} and sum(found["before"].values()) == 100  # its docs_in
    assert found["after"] == {"en": 60}
    assert sections.languages(stages[:2], {"01-extract": sets["01-extract"]}, {}, "01-extract") is None


# -- plots ------------------------------------------------------------------------------------

def test_stage_palette_has_20_distinct_colours():
    dirs = [f"{i:02d}-stage{i}" for i in range(20)]
    assert len(set(plots.stage_colors(dirs).values())) == 20 == len(set(plots.STAGE_PALETTE))
    assert plots.stage_colors(dirs + dirs[:3]) == plots.stage_colors(dirs)  # one colour per stage


def test_removals_plot_never_repeats_a_stage_colour():
    # 17 stages each removing something (the user's run: 00-read and 15-select were both blue).
    removals = [{"dir": f"{i:02d}-s{i}", "reasons": [{"reason": f"s{i}.r", "documents": 100 - i}]} for i in range(17)]
    svg = plots.removals_plot(removals)
    fills = {c for c in re.findall(r"fill: (#[0-9a-f]{6})", svg)} & set(plots.STAGE_PALETTE)
    assert len(fills) == 17


def test_funnel_labels_are_unique_and_name_each_stage_once(tmp_path):
    names = ["read", "extract", "language", "exact_dedup", "select", "tokenize"]
    stages = [stage(tmp_path, i, n, {"docs_in": 10, "docs_out": 10}) for i, n in enumerate(names)]
    rows = sections.funnel(stages, {}, False, {"dir": "05-tokenize", "documents": 9, "tokens": 90})["rows"]
    labels = [plots.funnel_label(r) for r in rows]
    assert labels == ["raw records", "00-read", "01-extract", "02-language", "03-exact_dedup", "04-select",
                      "05-tokenize", "training shards"]
    svg = plots.funnel_plot({"rows": rows, "raw_bytes_are_pages": False})
    assert "01-extract extract" not in svg and ">01-extract<" in svg


def _tick_labels(lo, hi):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.stairs([1.0], [lo, hi])
    plots.length_axis(ax, lo, hi)
    fig.canvas.draw()
    labels = [t.get_text() for t, x in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= x <= hi]
    plt.close(fig)
    return labels


def test_length_ticks_are_readable_at_every_span():
    assert _tick_labels(0.5, 2e5) == ["1", "10", "100", "1k", "10k", "100k"]  # decades
    assert _tick_labels(40, 900) == ["50", "100", "200", "500"]  # two decades or less: 1-2-5
    assert len(_tick_labels(120, 800)) >= 3  # within a decade: a linear axis, still several ticks
    assert _tick_labels(1e3, 1e7) == ["1k", "10k", "100k", "1M", "10M"]


def test_length_stairs_fill_gaps_with_zeros():
    counts, edges = plots.length_stairs({"lo": [0.0, 10.0], "hi": [1.0, 13.0], "count": [2, 5]})
    assert counts[0] == 2 and counts[-1] == 5 and counts[1:-1].sum() == 0 and len(edges) == len(counts) + 1
    assert edges[0] == 0.5 and edges[-1] == 13.0
