"""`thresher ablate`: does a curation recipe pay? Proxy models trained on each variant of a
corpus at equal tokens, with one tokenizer and one model, compared by perplexity on text none of
them saw (the FineWeb / DCLM / RefinedWeb way of proving a recipe), in one command.

    thresher ablate configs/ablate-curation.yaml [--output DIR] [--workers N] [--dry-run]

Steps, each resumable: the variants' pipelines and the shared tokenizer (`variants.py`), the eval
sets tokenized once (`evalsets.py`), one proxy per (variant, seed) (`runs.py`), then
`OUTPUT/ablate.json` and `OUTPUT/report.html` (`report.py`). A killed ablation, rerun, redoes only
what is missing: finished pipeline stages, the tokenizer, eval sets and every committed training
are reused.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from pipeline.io import write_bytes, write_json
from training.ablate.config import AblateConfig

SCHEMA = "thresher.ablate"


def run_ablation(config: AblateConfig, workers: int | None = None, progress: bool = True) -> dict:
    """Run (or resume) the ablation; returns what it writes to `OUTPUT/ablate.json`."""
    from pipeline.cluster import open_client
    from training.ablate.evalsets import tokenize_eval_sets
    from training.ablate.report import render_report
    from training.ablate.runs import run_trainings, summarize
    from training.ablate.variants import kept, prepare_variants

    Path(config.output).mkdir(parents=True, exist_ok=True)
    write_bytes(config_yaml(config).encode(), Path(config.output) / "config.yaml")
    with contextlib.ExitStack() as stack:  # Dask starts only if a pipeline has work left
        client = functools.cache(lambda: stack.enter_context(open_client(workers=workers)))
        model, manifests = prepare_variants(config, client, progress)
    eval_sets = tokenize_eval_sets(config, model)
    results = run_trainings(config, manifests, eval_sets)
    budget = config.budget
    variants = {}
    for name, manifest in manifests.items():
        counts = kept(manifest)
        variants[name] = {"manifest": manifest, **counts, "epochs": budget.tokens / max(counts["tokens"], 1)}
    ablate = {"schema": SCHEMA, "schema_version": 1, "output": config.output, "tokenizer": model,
              "budget": {"tokens": budget.tokens, "steps": config.steps(), "seq_len": budget.seq_len,
                         "seeds": config.seeds, "model": config.model},
              "variants": variants, "eval_sets": {n: {k: s[k] for k in ("documents", "tokens")}
                                                  for n, s in eval_sets.items()},
              **summarize(config, results),
              "trainings": {v: {str(s): r for s, r in by_seed.items()} for v, by_seed in results.items()}}
    write_json(ablate, Path(config.output) / "ablate.json")
    write_bytes(render_report(ablate).encode(), Path(config.output) / "report.html")
    return ablate


def config_yaml(config: AblateConfig) -> str:
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)
