"""The `thresher` command line.

    thresher run CONFIG.yaml [--output DIR] [--scheduler ADDRESS | --cluster KIND] [--workers N] [--dry-run]
                 [--sample N] [--remove-stale] [--keep-intermediate] [--no-guards]
    thresher demo [--output DIR]
    thresher list
    thresher trace OUTPUT (--doc ID | --shard DOMAIN/shard-NNNNN --index N | --text SNIPPET) [--json]

Bad configuration (a key, an input path, the output path, the stage order, an artifact such as
`mixture` that a stage needs and no earlier stage produces) exits with status 2 and one line
naming the key, before any stage runs; a failed guard (pipeline/guards.py) exits
with status 3 and one line once the stages it concerns have run; a full disk exits with status 4
and one line naming the file; an output folder (or dedup index) that another live run holds
exits with status 75 and one line naming its host, pid and start (pipeline/lock.py); Ctrl-C exits
with status 130 and SIGTERM with 143, each with one line, and the same command resumes. Set
THRESHER_DEBUG=1 for the traceback. `--help` works on every command. Other packages add commands
through `add_commands(subparsers)` in the modules named by `pipeline.registry.COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable

from pydantic import ValidationError

from pipeline import storage
from pipeline.config import RunConfig, load_config
from pipeline.guards import GuardFailed
from pipeline.interrupts import Terminated, terminate_raises
from pipeline.io import FULL
from pipeline.lock import Locked, check_free
from pipeline.options import CLUSTER_KINDS, ClusterError, ConfigError
from pipeline.preflight import check_paths
from pipeline.registry import COMMAND_MODULES


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler (tcp://host:8786) "
                   "instead of a local cluster; OUTPUT must be on a file system every worker sees")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPU count)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--keep-intermediate", action="store_true", help="write every map stage's kept documents "
                   "(by default consecutive map stages run fused and only the last of them writes its documents)")
    p.add_argument("--no-guards", action="store_true", help="exit 0 even when a source, an input or a mix "
                   "domain loses its documents (the config's guards: section; for exploring)")


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.cluster import open_client
    from pipeline.runner import Runner, print_summary

    if args.cluster and args.scheduler:
        raise ConfigError("--cluster and --scheduler: give one (--scheduler uses a running cluster, "
                          "--cluster starts one)")
    config = load_config(args.config, output=args.output, cluster=args.cluster)
    if args.sample:
        config = sampled(config, args.sample, args.output)
    stages = config.build_stages()
    _check_workers(args, config)
    check_paths(config)
    if args.dry_run:
        for stage in stages:  # what a run checks before its first stage (models, files), without a cluster
            stage.check()
        print(config.to_yaml(), end="")
        return 0
    check_free(storage.absolute(config.output), storage.absolute(config.output), "output")  # before a cluster starts
    try:
        with open_client(args.scheduler, args.workers, config.cluster) as client:
            summary = Runner(config, client, progress=not args.no_progress, remove_stale=args.remove_stale,
                             keep_intermediate=args.keep_intermediate, guards=not args.no_guards).run()
    except GuardFailed as failed:
        if failed.summary is not None:  # every stage ran: the receipt, then the one line
            print_summary(failed.summary)
        raise
    print_summary(summary)
    return 0


def sampled(config: RunConfig, n: int, output: str | None) -> RunConfig:
    """`config` reading the first `n` documents of each input (`read.limit`), written to
    `OUTPUT-sample-N` unless --output names a folder: a trial never replaces a full run's output."""
    read = config.read.model_copy(update={"limit": n})
    return config.model_copy(update={"read": read, "output": output or f"{config.output.rstrip('/')}-sample-{n}"})


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _check_workers(args: argparse.Namespace, config: RunConfig) -> None:
    """--workers sizes the local cluster only; batch jobs are sized in the config."""
    kind = config.cluster.kind if config.cluster else "local"
    if args.workers and kind != "local" and not args.scheduler:
        raise ConfigError(f"--workers: sizes a local cluster; for cluster.kind {kind} set cluster.jobs "
                          "and cluster.processes")


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(args.output, workers=args.workers, progress=not args.no_progress, scheduler=args.scheduler,
                    keep_intermediate=args.keep_intermediate, guards=not args.no_guards)


def cmd_list(args: argparse.Namespace) -> int:
    from pipeline.stage import stage_list

    for cls in stage_list():
        print(f"{cls.name}  [{cls.kind}]  {cls.describe()}")
        for field_name, field in cls.Params.model_fields.items():
            default = "required" if field.is_required() else f"default {field.default!r}"
            note = f"  {field.description}" if field.description else ""
            print(f"    {field_name}: {_type_name(field.annotation)} ({default}){note}")
    return 0


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thresher", description="Curate pre-training data on Dask.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a pipeline config", description="Run every stage of CONFIG; "
                       "finished stages and parts are skipped, so rerunning resumes a killed run.")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--output", metavar="DIR", help="output directory (overrides the config's `output`)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--sample", type=_positive, metavar="N", help="a quick trial: read only the first N documents of "
                   "each input (read.limit) and write to OUTPUT-sample-N unless --output is given")
    p.add_argument("--remove-stale", action="store_true", help="delete the stage folders the config no longer names "
                   "(default: move them to OUTPUT/_stale/<run-id>/)")
    p.add_argument("--cluster", choices=CLUSTER_KINDS, metavar="KIND",
                   help=f"start the workers as batch jobs ({', '.join(CLUSTER_KINDS)}; overrides the config's "
                   "cluster.kind, sized by its cluster: section); OUTPUT must be on a file system every node sees")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run every stage on a bundled sample crawl",
                       description="Write a small synthetic crawl, run the demo config over it, print where "
                       "the outputs and stats are.")
    p.add_argument("--output", metavar="DIR", default="out/demo", help="output directory (default: out/demo)")
    _add_run_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("list", help="list registered stages and their parameters")
    p.set_defaults(func=cmd_list)

    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_commands(sub)
    return parser



def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        with terminate_raises():
            return handler(args)
    except Locked as error:
        return _fail(error, 75)  # EX_TEMPFAIL: another run holds the folder; try again later
    except (ConfigError, ValidationError, ValueError, FileNotFoundError) as error:
        return _fail(error, 2)
    except ClusterError as error:
        return _fail(error, 1)
    except GuardFailed as error:
        return _fail(error, 3)
    except OSError as error:
        if error.errno not in FULL:
            raise
        return _fail(OSError(f"no space left on device writing {error.filename or 'the output'}; free space "
                             "(or give another --output) and rerun the same command to resume"), 4)
    except Terminated:
        print("thresher: terminated (SIGTERM); rerun the same command to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("thresher: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _fail(error: Exception, status: int) -> int:
    """Print `error` as one line (or re-raise it under THRESHER_DEBUG=1); `status` to exit with."""
    if os.environ.get("THRESHER_DEBUG"):
        raise error
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    print(f"thresher: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
