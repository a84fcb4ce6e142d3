"""`thresher ablate CONFIG`: proxy models on each variant at equal tokens, compared by perplexity.

    thresher ablate configs/ablate-curation.yaml [--output DIR] [--workers N] [--dry-run]

A bad config exits with status 2 and one line naming the key, before anything runs; rerunning
the same command resumes a killed ablation (only missing work is redone).
"""

from __future__ import annotations

import argparse


def cmd_ablate(args: argparse.Namespace) -> int:
    from training.ablate import config_yaml, run_ablation
    from training.ablate.config import load_ablate_config

    config = load_ablate_config(args.config, args.output)
    if args.dry_run:
        print(config_yaml(config), end="")
        return 0
    ablate = run_ablation(config, workers=args.workers, progress=not args.no_progress)
    for variant, sets in ablate["perplexity"].items():
        text = "  ".join(f"{e} {p['mean']:.2f} ± {p['std']:.2f}" for e, p in sets.items())
        print(f"{variant}: {text}")
    print(f"wrote {config.output}/ablate.json and {config.output}/report.html")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="compare corpus variants with proxy models at equal tokens",
                       description="Run each variant's pipeline with one shared tokenizer, train a proxy model per "
                       "variant and seed at the same token budget, and write OUTPUT/ablate.json and report.html "
                       "with perplexity on the eval sets. Rerunning resumes.")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--output", metavar="DIR", help="output directory (overrides the config's `output`)")
    p.add_argument("--workers", type=int, metavar="N", help="local Dask workers for the pipelines (default: CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_ablate)
