"""The report's plots: matplotlib (Agg) figures rendered to inline SVG strings.

Text stays text (`svg.fonttype: none`: selectable, small, drawn with the reader's local
sans-serif font, never a downloaded one); element ids
are prefixed with the plot's name so that several SVGs can live in one HTML document; the
hash salt is fixed and the date left out, so the same stats give the same bytes. Every
function takes parts of `stats.json` and returns an SVG string, or None when there is
nothing to draw.

    svg = funnel_plot(stats["funnel"])
"""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

# text.parse_math off: labels are data (reasons, domains) and a "$" in them is not TeX.
STYLE = {"svg.fonttype": "none", "font.family": ["DejaVu Sans", "sans-serif"], "svg.hashsalt": "thresher",
         "text.parse_math": False, "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "axes.titlesize": 10, "figure.dpi": 96}
COLORS = ("#3b6ea8", "#e07b39", "#5a9e55", "#b3443f", "#8467a8", "#8c6d5a", "#cf6fae", "#7f7f7f")
BEFORE, AFTER, CUT = COLORS[1], COLORS[0], "#b3443f"


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
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}" if isinstance(n, float) and not float(n).is_integer() else f"{int(n)}"


def _log(ax, which: str = "x") -> None:
    """A log axis labelled 1, 10, 100, 1K, ... (mathtext is off, see STYLE)."""
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
        labels = [f"{r['dir']} {r['step']}" if r["step"] != "raw records" else "raw records" for r in rows][::-1]
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
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=7, frameon=False)
        return to_svg(fig, "funnel")


def removals_plot(removals: list[dict], top: int = 20) -> str | None:
    items = [(r["documents"], f"{r['reason']}", s["dir"]) for s in removals for r in s["reasons"]]
    if not items:
        return None
    items = sorted(items, key=lambda x: (-x[0], x[1]))[:top][::-1]
    dirs = sorted({d for _, _, d in items})
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 0.28 * len(items) + 1.0)
        ax = axes[0][0]
        colors = [COLORS[dirs.index(d) % len(COLORS)] for _, _, d in items]
        ax.barh(range(len(items)), [n for n, _, _ in items], color=colors)
        ax.set_yticks(range(len(items)), [reason for _, reason, _ in items])
        for i, (n, _, _) in enumerate(items):
            ax.text(n, i, f" {n:,}", va="center", fontsize=7)
        handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[i % len(COLORS)]) for i in range(len(dirs))]
        ax.legend(handles, dirs, fontsize=7, frameon=False, loc="lower right")
        ax.set_xlabel("documents removed")
        return to_svg(fig, "removals")


def shares_plot(sets: dict[str, dict], column: str, name: str, top: int = 12) -> str | None:
    """Token share per value of `column` in each measured set (e.g. before / after)."""
    present = {role: s["categories"].get(column, {}) for role, s in sets.items() if s and s["categories"].get(column)}
    if not present:
        return None
    order = list(next(reversed(present.values())))[:top]
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 0.3 * len(order) * max(1, len(present)) / 1.5 + 1.1)
        ax = axes[0][0]
        width = 0.8 / len(present)
        for k, (role, counts) in enumerate(present.items()):
            docs = sum(v["documents"] for v in counts.values()) or 1
            values = [100.0 * counts.get(key, {}).get("documents", 0) / docs for key in order][::-1]
            ax.barh([i + k * width for i in range(len(order))], values, height=width,
                    color=AFTER if role == "after" else BEFORE if role == "before" else COLORS[2], label=role)
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(order))], order[::-1])
        ax.set_xlabel(f"% of documents by {column}")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
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
        ax.set_ylabel("% of tokens")
        ax.legend(fontsize=7, frameon=False)
        return to_svg(fig, "mixture")


def lengths_plot(sets: dict[str, dict]) -> str | None:
    present = {role: s for role, s in sets.items() if s and s["documents"]}
    if not present:
        return None
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.4, ncols=3)
        for ax, metric in zip(axes[0], ("chars", "words", "tokens")):
            for role, s in present.items():
                h = s["lengths"][metric]["histogram"]
                edges = [max(lo, 0.5) for lo in h["lo"]]  # 0 on a log axis: drawn at 0.5
                color = AFTER if role == "after" else BEFORE if role == "before" else COLORS[2]
                ax.step(edges, h["count"], where="post", color=color, label=f"{role} ({s['documents']:,})")
            _log(ax)
            ax.set_title(metric)
            ax.set_ylabel("documents" if metric == "chars" else "")
        axes[0][0].legend(fontsize=7, frameon=False)
        return to_svg(fig, "lengths")


def scores_plot(scores: dict[str, dict], selection: dict | None) -> str | None:
    if not scores:
        return None
    columns = sorted(scores)
    with plt.rc_context(STYLE):
        fig, axes = _figure(7.5, 2.4, ncols=len(columns))
        for ax, column in zip(axes[0], columns):
            h = scores[column]["histogram"]
            ax.bar(h["lo"], h["count"], width=0.02, align="edge", color=AFTER)
            ax.set_title(f"{column} ({scores[column]['scored']:,} scored)")
            ax.set_xlim(0, 1)
            if selection and selection.get("column") == column and selection.get("threshold") is not None:
                t = selection["threshold"]
                ax.axvline(t, color=CUT, linestyle="--")
                ax.axvspan(0, t, color=CUT, alpha=0.08)
                ax.text(t, ax.get_ylim()[1] * 0.95, f" cut {t:.3g}", color=CUT, fontsize=7, va="top")
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
        ax.set_title("tokens per domain")
        ax.legend(fontsize=7, frameon=False)
        ax = axes[0][1]
        lengths = shards.get("sequence_lengths")
        if lengths:
            h = lengths["histogram"]
            ax.step([max(lo, 0.5) for lo in h["lo"]], h["count"], where="post", color=AFTER)
            _log(ax)
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
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        return to_svg(fig, "timings")
