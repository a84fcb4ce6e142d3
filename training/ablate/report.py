"""`OUTPUT/report.html` of an ablation: one self-contained page in `thresher stats`' style.

Sections: the perplexity table (mean ± std over seeds per variant and eval set), the pairwise
differences with their spread, what each variant kept (documents, tokens, epochs at the budget),
and the loss curves against training tokens (training loss, and every eval set's loss at each
validation; the line is the mean over seeds, the band its min-max). The page's CSS is the stats
report's own (read from its template, so the two never drift apart); plots are inline SVG made
with the stats report's helpers; no script, no external resource.

    html = render_report(json.load(open("out/ablate/ablate.json")))
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader

from pipeline.report import plots
from pipeline.report.html import TEMPLATES as STATS_TEMPLATES
from pipeline.report.html import _environment as stats_environment

TEMPLATE = Path(__file__).parent / "templates"


def stats_style() -> str:
    """The `<style>` block of the stats report's template."""
    text = (STATS_TEMPLATES / "report.html.j2").read_text()
    return re.search(r"<style>.*?</style>", text, re.S).group(0)


def _series(trainings: dict[str, dict], key: str, name: str | None) -> dict[str, tuple]:
    """Per variant: (tokens, mean, min, max) over seeds of the training loss (`name` None) or
    of eval set `name`'s loss at each validation."""
    out = {}
    for variant, by_seed in trainings.items():
        runs = list(by_seed.values())
        steps = [step for step, _ in runs[0][key]]
        values = np.array([[v if name is None else v[name] for _, v in run[key]] for run in runs])
        tokens = np.asarray(steps) * runs[0]["tokens_per_step"]
        out[variant] = (tokens, values.mean(0), values.min(0), values.max(0))
    return out


def curve_plot(series: dict[str, tuple], title: str, name: str, ylabel: str = "loss") -> str | None:
    if not series:
        return None
    fig, axes = plots._figure(7.0, 2.6)
    ax = axes[0][0]
    for i, (variant, (tokens, mean, lo, hi)) in enumerate(series.items()):
        color = plots.COLORS[i % len(plots.COLORS)]
        ax.plot(tokens, mean, color=color, lw=1.2, label=variant)
        ax.fill_between(tokens, lo, hi, color=color, alpha=0.2, lw=0)
    ax.set_title(title)
    ax.set_xlabel("training tokens")
    ax.set_ylabel(ylabel)
    plots._human_axis(ax.xaxis)
    plots._legend_beside(ax)
    return plots.to_svg(fig, name)


def render_report(ablate: dict) -> str:
    trainings = ablate["trainings"]
    svg = {"train-loss": curve_plot(_series(trainings, "loss", None), "training loss (mean over seeds, "
                                    "band: min-max)", "train-loss")}
    for e in ablate["eval_sets"]:
        svg[f"eval-{e}"] = curve_plot(_series(trainings, "eval_loss", e), f"{e}: validation loss", f"eval-{e}")
    env = Environment(loader=FileSystemLoader([str(TEMPLATE)]), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(stats_environment().filters)
    return env.get_template("ablate.html.j2").render(a=ablate, svg=svg, style=stats_style())
