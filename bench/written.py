"""Parquet bytes a run wrote, per stage folder: kept parts, rejected parts, and other Parquet
(signatures, dedup work files). A file hard-linked from an earlier stage (the dedup stages
link parts they pass through unchanged) was not written again and counts once, where it
first appears.

    PYTHONPATH=. .venv/bin/python bench/written.py out/demo [out/other ...]   # ratios against the first
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

STAGE_DIR = re.compile(r"^\d{2,}-")


def written(run: Path) -> list[tuple[str, int, int, int, int]]:
    """(stage folder, kept bytes, rejected bytes, other Parquet bytes, kept parts) per stage."""
    seen: set[tuple[int, int]] = set()
    rows = []
    for stage in sorted(p for p in run.iterdir() if p.is_dir() and STAGE_DIR.match(p.name)):
        kept = rejected = other = parts = 0
        for file in sorted(stage.rglob("*.parquet")):
            info = file.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            relative = file.relative_to(stage)
            if len(relative.parts) == 1 and file.name.startswith("part-"):
                kept, parts = kept + info.st_size, parts + 1
            elif relative.parts[0] == "rejected":
                rejected += info.st_size
            else:
                other += info.st_size
        rows.append((stage.name, kept, rejected, other, parts))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    alls = []
    for run in args.runs:
        rows = written(run)
        print(f"\n{run}")
        print(f"{'stage':<26}{'kept':>12}{'rejected':>12}{'other':>12}{'parts':>7}")
        for name, kept, rejected, other, parts in rows:
            print(f"{name:<26}{kept:>12,}{rejected:>12,}{other:>12,}{parts:>7}")
        totals = [sum(r[i] for r in rows) for i in (1, 2, 3)]
        print(f"{'total':<26}{totals[0]:>12,}{totals[1]:>12,}{totals[2]:>12,}   all {sum(totals):,}")
        alls.append(sum(totals))
    if len(alls) > 1:  # the first run is the baseline (e.g. --keep-intermediate: everything written)
        print(f"\n{'run':<40}{'all bytes':>14}{'x fewer than the first':>24}")
        for run, n in zip(args.runs, alls):
            print(f"{run!s:<40}{n:>14,}{alls[0] / n if n else float('inf'):>24.2f}")


if __name__ == "__main__":
    main()
