"""The report's plots: matplotlib (Agg) figures rendered to inline SVG strings.

Text stays text (`svg.fonttype: none`: selectable, small, drawn with the reader's local
sans-serif font, never a downloaded one); element ids
are prefixed with the plot's name so that several SVGs can live in one HTML document; the
hash salt is fixed and the date left out, so the same stats give the same bytes. Every
function takes parts of `stats.json` and returns an SVG string, or None when there is
nothing to draw. Legends sit above the axes, never over the bars; stages are coloured from
`STAGE_PALETTE` (20 distinct colours); length axes are log-scaled where lengths span a decade
or more, with ticks labelled 1, 10, 100, 1k, 10k, 1M.

    svg = funnel_plot(stats["funnel"])
"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import to_hex
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from pipeline.report.docstats import LENGTH_EDGES

# text.parse_math off: labels are data (reasons, domains) and a "$" in them is not TeX.
STYLE = {"svg.fonttype": "none", "font.family": ["DejaVu Sans", "sans-serif"], "svg.hashsalt": "thresher",
         "text.parse_math": False, "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "axes.titlesize": 10, "figure.dpi": 96}
COLORS = ("#3b6ea8", "#e07b39", "#5a9e55", "#b3443f", "#8467a8", "#8c6d5a", "#cf6fae", "#7f7f7f")
BEFORE, AFTER, CUT = COLORS[1], COLORS[0], "#b3443f"
ROLE_COLORS = {"before": BEFORE, "after": AFTER}
_TAB20 = matplotlib.colormaps["tab20"].colors
# One colour per stage: tab20's ten saturated colours, then their ten light partners, so the
# first ten stages get the strongest contrast and no colour repeats before the 21st stage.
STAGE_PALETTE = tuple(to_hex(c) for c in _TAB20[0::2] + _TAB20[1::2])


def to_svg(fig, name: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = re.sub(r"<!--.*?-->", "", text[text.index("<svg"):], flags=re.S)  # matplotlib's label comments
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    text = text.replace('href="#', f'href="#{name}-').replace("url(#", f"url(#{name}-")
    return text.replace("<svg ", f'<svg role="img" aria-label="{name}" data-plot="{name}" ', 1)


def _figure(width: float, height: float, ncols: int = 1):
    with plt.rc_context(STYLE):
        return plt.subplots(1, ncols, figsize=(width, height), squeeze=False, layout="constrained")


def human(n: float | None) -> str:
    if n is None:
        return "–"
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}" if isinstance(n, float) and not float(n).is_integer() else f"{int(n)}"


def stage_colors(dirs: list[str]) -> dict[str, str]:
    """A colour per stage folder, in the order given (run order): distinct for up to
    len(STAGE_PALETTE) = 20 stages, then cycling."""
    return {d: STAGE_PALETTE[i % len(STAGE_PALETTE)] for i, d in enumerate(dict.fromkeys(dirs))}


LEGEND = {"fontsize": 7, "frameon": False, "handlelength": 1.2, "columnspacing": 1.0}


def _legend_above(ax, ncol: int) -> None:
    """The legend in a row above an untitled axes, where it cannot cover a bar (constrained
    layout makes room for it)."""
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=ncol, borderaxespad=0.2, **LEGEND)


def _legend_beside(ax) -> None:
    """The legend right of a titled axes (above it, it would sit on the title)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), **LEGEND)


def _human_axis(axis) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))


def length_axis(ax, lo: float, hi: float) -> None:
    """An x axis for lengths in [lo, hi]: linear within a decade; log beyond, ticked 1-2-5 up to
    two and a half decades and at every decade past that; labels in human units (1k, 10k)."""
    ax.set_xlim(lo, hi)
    if hi < 10 * lo:
        ax.xaxis.set_major_locator(MaxNLocator(5))
    else:
        ax.set_xscale("log")
        subs = (1.0,) if hi >= 300 * lo else (1.0, 2.0, 5.0)
        ax.xaxis.set_major_locator(LogLocator(10, subs=subs, numticks=8))
        ax.xaxis.set_minor_locator(LogLocator(10, subs=tuple(range(2, 10)), numticks=12))
        ax.xaxis.set_minor_formatter(NullFormatter())
    _human_axis(ax.xaxis)


def length_stairs(histogram: dict) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of a length histogram over every fixed bin from its first non-empty bin
    to its last (the stats keep non-empty bins only; the gaps are zeros). The [0, 1) bin
    starts at 0.5 and the open last bin ends ~26% above its start, so a log axis can draw them."""
    index = np.searchsorted(LENGTH_EDGES, histogram["lo"])
    first, last = int(index[0]), int(index[-1])
    counts = np.zeros(last - first + 1)
    counts[index - first] = histogram["count"]
    edges = [float(e) for e in LENGTH_EDGES[first:last + 2]]
    if len(edges) == len(counts):
        edges.append(edges[-1] * 1.26)
    edges[0] = max(edges[0], 0.5)
    return counts, np.asarray(edges)


def funnel_label(row: dict) -> str:
    """A funnel row's label: its folder, which names the stage already (`01-extract`), or the
    step for rows that are not one stage's output (`raw records`, `training shards`)."""
    return row["dir"] if row["dir"].endswith("-" + row["step"]) else row["step"]


def _log(ax, which: str = "x") -> None:
    """A log axis labelled 1, 10, 100, 1k, ... (mathtext is off, see STYLE)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
    axis.set_minor_formatter(NullFormatter())


def funnel_plot(funnel: dict) -> str | None:
    rows = funnel["rows"]
    if not rows:
        return None
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 0.42 * len(rows) + 1.0)
        ax = axes[0][0]
        labels = [funnel_label(r) for r in rows][::-1]
        y = range(len(rows))
        for k, (key, label) in enumerate((("pct_documents", "documents"), ("pct_bytes", "bytes"),
                                          ("pct_tokens", "tokens"))):
            values = [r[key] or 0.0 for r in rows][::-1]
            ax.barh([i + (1 - k) * 0.27 for i in y], values, height=0.26, color=COLORS[k], label=f"% of raw {label}")
            for i, (v, r) in enumerate(zip(values, rows[::-1])):
                if r[key] is not None:
                    ax.text(v + 1, i + (1 - k) * 0.27, f"{v:.3g}%", va="center", fontsize=7)
        ax.set_yticks(list(y), labels)
        ax.set_xlim(0, 118)
        ax.set_xlabel("% of the raw records (documents, bytes) / of the first token count")
        _legend_above(ax, 3)
        return to_svg(fig, "funnel")


def removals_plot(removals: list[dict], top: int = 20) -> str | None:
    """The `top` reasons by documents removed, coloured by stage (run order: at most `top`
    stages, so no two share a colour)."""
    items = [(r["documents"], f"{r['reason']}", s["dir"]) for s in removals for r in s["reasons"]]
    if not items:
        return None
    items = sorted(items, key=lambda x: (-x[0], x[1]))[:top][::-1]
    shown = {d for _, _, d in items}
    colors = stage_colors([s["dir"] for s in removals if s["dir"] in shown])
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 0.28 * len(items) + 1.0 + 0.18 * ((len(colors) + 4) // 5))
        ax = axes[0][0]
        ax.barh(range(len(items)), [n for n, _, _ in items], color=[colors[d] for _, _, d in items])
        ax.set_yticks(range(len(items)), [reason for _, reason, _ in items])
        for i, (n, _, _) in enumerate(items):
            ax.text(n, i, f" {n:,}", va="center", fontsize=7)
        ax.set_xlim(0, max(n for n, _, _ in items) * 1.12)
        _human_axis(ax.xaxis)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
        # A figure legend: its rows span the page width, not only the bars' (the reasons are long).
        fig.legend(handles, list(colors), loc="outside upper left", ncol=5, **LEGEND)
        ax.set_xlabel("documents removed")
        return to_svg(fig, "removals")


def shares_plot(series: dict[str, dict[str, int]], column: str, name: str, top: int = 12) -> str | None:
    """Share of documents per value of `column` in each series (role -> value -> documents,
    e.g. before / after). A value absent from the last series (a source removed entirely)
    still gets its row, after the others."""
    present = {role: counts for role, counts in series.items() if counts}
    if not present:
        return None
    order = list(dict.fromkeys(k for counts in reversed(present.values()) for k in counts))[:top]
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 0.3 * len(order) * max(1, len(present)) / 1.5 + 1.2)
        ax = axes[0][0]
        width = 0.8 / len(present)
        for k, (role, counts) in enumerate(present.items()):
            docs = sum(counts.values()) or 1
            values = [100.0 * counts.get(key, 0) / docs for key in order][::-1]
            ys = [i + (len(present) - 1 - k) * width for i in range(len(order))]
            ax.barh(ys, values, height=width, color=ROLE_COLORS.get(role, COLORS[2]), label=role)
            for y, v in zip(ys, values):  # a 0 is written too: a value the set lost entirely
                ax.text(v + 0.5, y, f"{v:.3g}%", va="center", fontsize=6)
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(order))], order[::-1])
        ax.set_xlim(0, 108)
        ax.set_xlabel(f"% of documents by {column}")
        _legend_above(ax, len(present))
        return to_svg(fig, name)


def mixture_plot(mixture: dict | None, shards: dict | None) -> str | None:
    domains = list((mixture or {}).get("domains", {})) or list((shards or {}).get("domains", {}))
    if not domains:
        return None
    series = []
    if mixture:
        series.append(("target", [mixture["domains"][d]["target"] for d in domains], COLORS[7]))
        series.append(("achieved by mix", [mixture["domains"][d]["achieved"] for d in domains], COLORS[1]))
    if shards:
        series.append(("achieved in shards", [shards["domains"].get(d, {}).get("achieved", 0.0) for d in domains],
                       COLORS[0]))
        if not mixture:
            series.insert(0, ("target weight", [shards["domains"][d]["weight"] for d in domains], COLORS[7]))
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.6)
        ax = axes[0][0]
        width = 0.8 / len(series)
        for k, (label, values, color) in enumerate(series):
            xs = [i + k * width for i in range(len(domains))]
            ax.bar(xs, [100 * v for v in values], width=width, color=color, label=label)
            for x, v in zip(xs, values):
                ax.text(x, 100 * v, f"{100 * v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(domains))], domains)
        ax.set_ylim(0, 100 * max(max(v) for _, v, _ in series) * 1.12 or 1)
        ax.set_ylabel("% of tokens")
        _legend_above(ax, len(series))
        return to_svg(fig, "mixture")


def lengths_plot(sets: dict[str, dict]) -> str | None:
    present = {role: s for role, s in sets.items() if s and s["documents"]}
    if not present:
        return None
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.5, ncols=3)
        for ax, metric in zip(axes[0], ("chars", "words", "tokens")):
            spans = []
            for role, s in present.items():
                counts, edges = length_stairs(s["lengths"][metric]["histogram"])
                ax.stairs(counts, edges, color=ROLE_COLORS.get(role, COLORS[2]), label=f"{role} ({s['documents']:,})")
                spans += [edges[0], edges[-1]]
            length_axis(ax, min(spans), max(spans))
            _human_axis(ax.yaxis)
            ax.set_title(metric)
            ax.set_ylabel("documents" if metric == "chars" else "")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper left", ncol=len(labels), **LEGEND)
        return to_svg(fig, "lengths")


def scores_plot(scores: dict[str, dict], selection: dict | None, flags: dict[str, str] | None = None) -> str | None:
    """Score histograms (50 bins of [0, 1]) with the select cut; a column in `flags` (column
    -> verdict, from `checks.score_check`) says so in red in its title."""
    if not scores:
        return None
    columns = sorted(scores)
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.4, ncols=len(columns))
        for ax, column in zip(axes[0], columns):
            h = scores[column]["histogram"]
            ax.bar(h["lo"], h["count"], width=0.02, align="edge", color=AFTER)
            flag = (flags or {}).get(column)
            ax.set_title(f"{column} ({scores[column]['scored']:,} scored)" + (f"\n{flag}" if flag else ""),
                         **({"color": CUT} if flag else {}))
            _human_axis(ax.yaxis)
            ax.set_xlim(0, 1)
            if selection and selection.get("column") == column and selection.get("threshold") is not None:
                t = selection["threshold"]
                ax.axvline(t, color=CUT, linestyle="--")
                ax.axvspan(0, t, color=CUT, alpha=0.08)
                left = t > 0.5  # the label on the side with more room, off the bars near the cut
                ax.text(t, ax.get_ylim()[1] * 0.95, f" cut {t:.3g} ", color=CUT, fontsize=7, va="top",
                        ha="right" if left else "left")
        axes[0][0].set_ylabel("documents")
        return to_svg(fig, "scores")


def cluster_plot(audit: dict, name: str) -> str | None:
    sizes = audit.get("group_size_histogram") or {}
    by_source = audit.get("removed_by_source") or {}
    if not sizes and not by_source:
        return None
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.4, ncols=2)
        ax = axes[0][0]
        keys = sorted(sizes, key=int)
        ax.bar([int(k) for k in keys], [sizes[k] for k in keys], color=AFTER)
        _log(ax, "y")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("cluster size (documents)")
        ax.set_ylabel("clusters")
        ax.set_title("duplicate clusters")
        ax = axes[0][1]
        names = sorted(by_source, key=lambda k: (-by_source[k], k))[:12]
        ax.barh(range(len(names)), [by_source[n] for n in names][::-1] if names else [], color=BEFORE)
        ax.set_yticks(range(len(names)), names[::-1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("documents removed")
        ax.set_title("removed by source")
        return to_svg(fig, name)


def s_curve_plot(lsh: dict, false_positives: dict | None, name: str) -> str | None:
    curve = lsh.get("s_curve") or []
    if not curve:
        return None
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.4, ncols=2)
        ax = axes[0][0]
        ax.plot([p["jaccard"] for p in curve], [p["p_candidate"] for p in curve], color=AFTER)
        threshold = lsh.get("jaccard_threshold")
        if threshold is not None:
            ax.axvline(threshold, color=CUT, linestyle="--")
            ax.text(threshold, 0.05, f" threshold {threshold:.3g}", color=CUT, fontsize=7)
        ax.set_xlabel("Jaccard similarity of a pair")
        ax.set_ylabel("P(candidate)")
        ax.set_title(f"LSH S-curve: {lsh.get('bands')} bands x {lsh.get('rows')} rows")
        ax = axes[0][1]
        hist = (false_positives or {}).get("true_jaccard_histogram") or {}
        ax.bar(range(len(hist)), list(hist.values()), color=BEFORE)
        ax.set_xticks(range(len(hist)), [k.split("-")[0] for k in hist], fontsize=7)
        ax.set_xlabel("true Jaccard of sampled candidate pairs")
        ax.set_title(f"{(false_positives or {}).get('sampled_pairs', 0)} pairs sampled")
        return to_svg(fig, name)


def shards_plot(shards: dict | None) -> str | None:
    if not shards or not shards["domains"]:
        return None
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.4, ncols=2)
        ax = axes[0][0]
        domains = list(shards["domains"])
        train = [shards["domains"][d]["tokens"] for d in domains]
        valid = [shards["domains"][d]["valid_tokens"] for d in domains]
        ax.bar(domains, train, color=AFTER, label="train")
        ax.bar(domains, valid, bottom=train, color=BEFORE, label="valid")
        ax.set_ylabel("tokens")
        _human_axis(ax.yaxis)
        ax.set_title("tokens per domain")
        _legend_beside(ax)
        ax = axes[0][1]
        lengths = shards.get("sequence_lengths")
        if lengths and lengths["histogram"]["lo"]:
            counts, edges = length_stairs(lengths["histogram"])
            ax.stairs(counts, edges, color=AFTER)
            length_axis(ax, edges[0], edges[-1])
            _human_axis(ax.yaxis)
        ax.set_xlabel("sequence length (tokens incl. EOS)")
        ax.set_title("training sequences")
        return to_svg(fig, "shards")


def timings_plot(timings: list[dict]) -> str | None:
    if not timings:
        return None
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 0.3 * len(timings) + 1.0)
        ax = axes[0][0]
        labels = [t["dir"] for t in timings][::-1]
        ax.barh(range(len(timings)), [t["wall_seconds"] for t in timings][::-1], color=AFTER, label="wall seconds")
        ax.barh([i + 0.3 for i in range(len(timings))], [t["worker_seconds"] for t in timings][::-1], height=0.3,
                color=BEFORE, label="worker seconds")
        ax.set_yticks(range(len(timings)), labels)
        ax.set_xlabel("seconds")
        _legend_above(ax, 2)
        return to_svg(fig, "timings")
