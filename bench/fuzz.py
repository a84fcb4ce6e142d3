"""Long fuzz run: the fuzz tests' targets (readers, HTML decoding, word splitting, dedup
normalisation) with fresh seeds and a time budget, where the test suite runs each for a few
seconds on fixed examples.

Targets come from the `TARGETS` of the fuzz test modules (tests/fuzzing.py says how one is
declared). Each target runs in rounds of `--chunk` examples, round i with seed `--seed + i`, until
its `--seconds` are spent; a failing round prints its error and shrunk example, and the next
round goes on. Prints, per target: rounds, examples tried (shrinking included), failing rounds,
distinct errors; exits 1 when anything failed. A failure is replayed by `--seed` and `--chunk`.

    nice -n 10 .venv/bin/python bench/fuzz.py                    # every target, 60 s each
    .venv/bin/python bench/fuzz.py --seconds 300 --targets warc_reader jsonl_reader --seed 7
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
# `python bench/fuzz.py` puts bench/ first on sys.path, where bench/tokenize.py would shadow
# the standard library's tokenize: keep bench/ last, the checkout first.
sys.path = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

import argparse
import contextlib
import importlib
import io
import time

from hypothesis import given, seed, settings

from tests.fuzzing import CI_SETTINGS, Target

MODULES = ("tests.pipeline.test_fuzz_readers", "tests.pipeline.test_fuzz_decode", "tests.filters.test_fuzz_words",
           "tests.dedup.test_fuzz_normalize")


def all_targets() -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for name in MODULES:
        targets.update(importlib.import_module(name).TARGETS)
    return targets


def run_round(target: Target, round_seed: int, examples: int) -> tuple[int, list[BaseException]]:
    """Run `examples` fresh examples of `target`; return (examples tried, errors found)."""
    tried = 0

    def body(value):
        nonlocal tried
        tried += 1
        target.check(value)

    fresh = settings(CI_SETTINGS, derandomize=False, max_examples=examples)
    test = fresh(seed(round_seed)(given(target.strategy)(body)))
    try:
        # warcio writes a warning per damaged record to stderr
        with contextlib.redirect_stderr(io.StringIO()):
            test()
    except BaseExceptionGroup as group:  # hypothesis found several distinct failures
        return tried, list(group.exceptions)
    except Exception as error:
        return tried, [error]
    return tried, []


def describe(error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [""])[0][:160]
    return f"{type(error).__name__}: {first}"


def fuzz(name: str, target: Target, seconds: float, chunk: int, first_seed: int) -> dict:
    start, rounds, tried, failed, errors = time.perf_counter(), 0, 0, 0, {}
    while time.perf_counter() - start < seconds:
        round_seed = first_seed + rounds
        n, found = run_round(target, round_seed, chunk)
        rounds, tried = rounds + 1, tried + n
        if found:
            failed += 1
            for error in found:
                key = describe(error)
                if key not in errors:
                    errors[key] = round_seed
                    notes = "\n    ".join(note[:600] for note in getattr(error, "__notes__", []))
                    print(f"  {name}: FAILED (seed {round_seed}, chunk {chunk}): {key}\n    {notes}", flush=True)
    return {"target": name, "rounds": rounds, "examples": tried, "failed_rounds": failed,
            "distinct_errors": len(errors), "seconds": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="time budget per target (default 60)")
    parser.add_argument("--chunk", type=int, default=500, help="examples per round (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round (default 0)")
    parser.add_argument("--targets", nargs="*", help="targets to run (default: all)")
    args = parser.parse_args()
    targets = all_targets()
    names = args.targets or list(targets)
    if unknown := [n for n in names if n not in targets]:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(targets)}")
    rows = []
    for name in names:
        rows.append(fuzz(name, targets[name], args.seconds, args.chunk, args.seed))
        print(f"  {name}: {rows[-1]['examples']} examples, {rows[-1]['failed_rounds']} failing rounds", flush=True)
    print(f"\n{'target':<18}{'rounds':>8}{'examples':>10}{'per s':>8}{'failed':>8}{'errors':>8}")
    for row in rows:
        print(f"{row['target']:<18}{row['rounds']:>8}{row['examples']:>10}{row['examples'] / row['seconds']:>8.0f}"
              f"{row['failed_rounds']:>8}{row['distinct_errors']:>8}")
    return 1 if any(row["failed_rounds"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
