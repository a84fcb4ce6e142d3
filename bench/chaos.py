"""Chaos benchmark: does a run SIGKILLed at random moments resume to the bytes of an uninterrupted one?

Data: the demo's synthetic crawl and newswire (`pipeline/demo/crawl.py`, its two fastText
classifiers trained as `thresher demo` does) plus the real WARCs of
../shared/data/warc_real_crawls, through `configs/demo.yaml`: every stage from WARC to token
shards (read, extract, language, the filters, MinHash dedup, classify, select, mix, tokenize).

Method: one uninterrupted reference run (`thresher run ... --workers 2`), whose log gives when
each stage (or fused chain of map stages) starts and how long it takes. Then trials: each starts a
fresh output and kills the run's whole process group (SIGKILL, `os.killpg`) a random time into a
chosen stage, drawn round-robin so that every stage gets kills; with probability `--rekill` the
resume is killed again in the same or a later stage. A trial reruns the command until it exits 0
(a rerun that fails on its own is a failed resume; three in a row end the trial). Where a kill
landed is read from the disk, not the log: the first stage without its `_manifest.json`
(`finish` when only `stats.json` was missing). A trial is identical when every file of its
output equals the reference's byte for byte (Parquet parts, rejected parts, shards, tokenizer;
JSON manifests and stats with their timings and the output path taken out) and every stage holds
the same multiset of document ids, kept and rejected (none lost, none duplicated).

With `--write-points` each trial is killed once, right after the K-th file the run commits (its
atomic rename into the output; bench/chaos_hook/sitecustomize.py counts them across the run's
processes and kills), K drawn from equal slices of the reference run's files: the narrow windows
between two writes that a kill at a random moment seldom hits.

Printed: per stage, kills landed, trials identical and different among those whose kills landed
there, and failed resumes; then every difference found.

    nice -n 10 env PYTHONPATH=. .venv/bin/python bench/chaos.py --kills 20 --seed 0
    nice -n 10 env PYTHONPATH=. .venv/bin/python bench/chaos.py --kills 20 --write-points
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ off sys.path: a sibling benchmark named like a stdlib module (bench/tokenize.py) would
# shadow it.
BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
THRESHER = [sys.executable, "-m", "pipeline.cli"]
STARTED = re.compile(r"^\[([^\]]+)\] started:")
ENDED = re.compile(r"^\[([^\]]+)\] \d+ in -> ")
# manifest and stats keys that measure time or place, not content
VOLATILE_KEYS = {"seconds", "wall_seconds", "config_hash"}  # config_hash covers the output path
MAX_FAILED_RESUMES = 3
WRITE = "write"  # a kill aimed right after the K-th file a run commits (bench/chaos_hook/)
HOOK = Path(__file__).resolve().parent / "chaos_hook"


def write_config(work: Path, extra_warcs: list[Path], unwritten_read: bool = False) -> Path:
    """The demo's sample and models under `work`, and `configs/demo.yaml` over them plus every
    folder of WARCs in `extra_warcs` as a source of its own (with `unwritten_read`, the read
    stage feeding extraction and the filters in its own tasks: `read.materialize: false`)."""
    from pipeline.demo.crawl import write_sample
    from pipeline.demo.models import train_demo_models

    sample, models = write_sample(work / "sample"), work / "models"
    train_demo_models(sample, models)
    text = (REPO / "configs" / "demo.yaml").read_text()
    text = text.replace("${DEMO_SAMPLE:-out/demo/sample}", str(sample))
    text = text.replace("${DEMO_MODELS:-out/demo/models}", str(models))
    config = yaml.safe_load(text)
    config["inputs"] += [{"path": f"{folder}/*.warc.gz", "format": "warc", "source": folder.name}
                         for folder in extra_warcs]
    config["guards"]["max_quarantined_files"] = 1 + len(extra_warcs)  # each real set has a truncated WARC
    if unwritten_read:
        config["read"] = {**config.get("read", {}), "materialize": False}
        config["stages"] = [{"extract": {**(s["extract"] or {}), "materialize": False}}
                            if isinstance(s, dict) and "extract" in s else s for s in config["stages"]]
    path = work / "chaos.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# -- running and killing ------------------------------------------------------------------------

@dataclasses.dataclass
class Attempt:
    returncode: int
    killed: bool
    landed: str | None  # the stage the kill landed in, read from the disk
    log: str
    phases: dict[str, float]  # stage label -> seconds from the start to its `started` line; `finish`:
    # to the last stage's summary line (then stats.json, the guards and the cluster's shutdown)
    seconds: float


def run_thresher(config: Path, output: Path, kill: tuple[str, float] | None = None,
                 order: list[str] | None = None, extra: tuple[str, ...] = ()) -> Attempt:
    """`thresher run CONFIG --output OUTPUT` in a session of its own. With `kill` (a stage label
    and a delay), SIGKILL its process group `delay` seconds after that stage, or a later one in
    `order`, logs its start; the kill is skipped if the run ends first. With (WRITE, K) the run
    kills itself right after committing its K-th file (K=0: only list them in OUTPUT.writes)."""
    log_path = output.parent / f"{output.name}.log"
    timed = kill if kill and kill[0] != WRITE else None
    start = time.monotonic()
    with log_path.open("w") as err:
        proc = subprocess.Popen(THRESHER + ["run", str(config), "--output", str(output), "--workers", "2",
                                            "--no-progress", *extra], cwd=REPO, start_new_session=True,
                                env=_environment(output, kill), stdout=subprocess.DEVNULL, stderr=err)
        phases, kill_at, killed = {}, None, False
        while proc.poll() is None:
            phases.update(_new_phases(log_path, phases, start, output))
            if timed and kill_at is None and any(_reached(p, timed[0], order) for p in phases):
                kill_at = time.monotonic() + kill[1]
            if kill_at is not None and time.monotonic() >= kill_at:
                _kill_group(proc)
                killed = True
                break
            time.sleep(0.01)
        if kill and kill[0] == WRITE and proc.wait() == -signal.SIGKILL:
            _kill_group(proc)  # killed by itself: wait for the rest of its group to go
            killed = True
        proc.wait()
    phases.update(_new_phases(log_path, phases, start, output))
    landed = landed_stage(output) if killed else None
    return Attempt(proc.returncode, killed, landed, log_path.read_text(), phases, time.monotonic() - start)


def _environment(output: Path, kill: tuple[str, float] | None) -> dict[str, str]:
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    if not kill or kill[0] != WRITE:
        return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    counter = Path(f"{output}.writes")
    for stale in (counter, Path(f"{counter}.killed")):
        stale.unlink(missing_ok=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HOOK), *paths]), "CHAOS_OUTPUT": str(output),
            "CHAOS_COUNTER": str(counter), "CHAOS_KILL_AT": str(int(kill[1]))}


def _reached(started: str, target: str, order: list[str]) -> bool:
    """Whether a stage label a run logged is `target` or a later one (a resumed chain may log
    only its unfinished part: `05-gopher_quality..08-pii`)."""
    label = phase_of(started.split("..")[0], order)
    return label in order and order.index(label) >= order.index(target)


def _new_phases(log_path: Path, seen: dict[str, float], start: float, output: Path) -> dict[str, float]:
    now = time.monotonic() - start
    found = {}
    for line in log_path.read_text().splitlines():
        if (m := STARTED.match(line)) and m.group(1) not in seen:
            found[m.group(1)] = now
        elif (m := ENDED.match(line)) and "finish" not in seen and m.group(1) == _last_stage(output):
            found["finish"] = now
    return found


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole group, then wait until none of its processes is left (a survivor still
    writing into the output would make the resume's result meaningless)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"process group {proc.pid} still has processes 30 s after SIGKILL")


def landed_stage(output: Path) -> str:
    """Where a killed run was: the first planned stage folder without its manifest."""
    if not (output / "config.yaml").exists():
        return "start-up"
    for name in planned_stages(output):
        if not (output / name / "_manifest.json").exists():
            return name
    return "finish"  # stats.json, or the cluster shutting down


@functools.lru_cache
def _last_stage(output: Path) -> str:
    return planned_stages(output)[-1]


def planned_stages(output: Path) -> list[str]:
    """Stage folders of the run in order (`00-read`, `01-extract`, ...), from its config.yaml."""
    from pipeline.stale import configured_dirs

    return configured_dirs(str(output))


# -- comparing ----------------------------------------------------------------------------------

def digest(output: Path) -> dict[str, str]:
    """sha256 of every file of a finished run by relative path; the output folder's path is
    replaced in JSON and YAML files, and JSON files are hashed without their timings."""
    hashes = {}
    for path in sorted(p for p in output.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix in (".json", ".yaml"):
            data = data.replace(str(output).encode(), b"OUTPUT")
        if path.suffix == ".json":
            data = json.dumps(_steady(json.loads(data)), sort_keys=True).encode()
        hashes[str(path.relative_to(output))] = hashlib.sha256(data).hexdigest()
    return hashes


def _steady(value):
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def stage_ids(output: Path) -> dict[str, Counter]:
    """Document ids per stage folder and kind (kept parts, rejected parts), counted."""
    from pipeline.parts import read_part

    ids = {}
    for stage in planned_stages(output):
        path = output / stage / "_manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else {}
        for kind, pattern in (("kept", "part-*.parquet"), ("rejected", "rejected/*.parquet")):
            files = sorted((output / stage).glob(pattern))
            if kind == "kept" and manifest.get("views"):
                # views of an earlier stage's parts (pipeline/parts.py): read as the next stage reads them
                files = [output / stage / p for p in manifest["parts"]]
            ids[f"{stage} {kind}"] = Counter(i for f in files
                                             for i in read_part(str(f), columns=["id"])["id"].to_pylist())
    return ids


def differences(reference: Path, output: Path) -> list[str]:
    """What differs between two finished runs: files, and ids lost or duplicated per stage."""
    found = []
    ref, got = digest(reference), digest(output)
    for name in sorted(ref.keys() | got.keys()):
        if ref.get(name) != got.get(name):
            found.append(f"{name}: " + ("missing" if name not in got else "extra" if name not in ref else "differs"))
    ref_ids, got_ids = stage_ids(reference), stage_ids(output)
    for key in ref_ids:
        lost, extra = ref_ids[key] - got_ids[key], got_ids[key] - ref_ids[key]
        if lost or extra:
            found.append(f"{key} ids: {sum(lost.values())} lost, {sum(extra.values())} duplicated or new")
    return found


# -- trials -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Trial:
    kills: list[str]  # the stage each kill landed in, in order (the first in the fresh run)
    missed: int  # kills planned but not made: the run ended first
    failed_resumes: list[str]  # per rerun that failed on its own: the stage it resumed from
    problems: list[str]  # differences from the reference, or why the trial did not finish
    seconds: float

    @property
    def identical(self) -> bool:
        return not self.problems


def run_trial(config: Path, reference: Path, output: Path, targets: list[tuple[str, float]],
              order: list[str], extra: tuple[str, ...] = ()) -> Trial:
    """Run into a fresh `output`, killing the first run and its resumes at `targets` (stage
    label, delay) in turn, then rerun until the command succeeds; compare with `reference`."""
    start = time.monotonic()
    shutil.rmtree(output, ignore_errors=True)
    kills: list[str] = []
    failed: list[str] = []
    pending = list(targets)
    missed = 0
    while True:
        kill = pending.pop(0) if pending else None
        attempt = run_thresher(config, output, kill, order, extra)
        missed += kill is not None and not attempt.killed
        if attempt.killed:
            kills.append(phase_of(attempt.landed, order))
        elif attempt.returncode == 0:
            break
        else:
            failed.append(kills[-1] if kills else "first run")
            if len(failed) == MAX_FAILED_RESUMES:
                tail = attempt.log.strip().splitlines()[-1:]
                return Trial(kills, missed, failed, [f"gave up after {len(failed)} failed resumes: {tail}"],
                             time.monotonic() - start)
    return Trial(kills, missed, failed, differences(reference, output), time.monotonic() - start)


def phase_of(folder: str, order: list[str]) -> str:
    """The stage label (`02-language..08-pii` for a fused chain) a stage folder belongs to."""
    if not folder[:2].isdigit():
        return folder
    number = int(folder[:2])
    for label in (o for o in order if o[:2].isdigit()):
        first, _, last = label.partition("..")
        if int(first[:2]) <= number <= int((last or first)[:2]):
            return label
    return folder


def phase_windows(reference: Attempt) -> dict[str, float]:
    """Seconds each stage label lasted in the reference run (`finish` until the run ended)."""
    starts = sorted(reference.phases.items(), key=lambda item: item[1])
    ends = [t for _, t in starts[1:]] + [reference.seconds]
    return {label: end - t for (label, t), end in zip(starts, ends)}


def draw_targets(kills: int, windows: dict[str, float], rekill: float, rng: random.Random) -> list[list]:
    """Kill plans, one per trial: the first kill's stage round-robin over the stages (in a seeded
    order), each further kill (probability `rekill`) in the same or a later stage; every delay
    uniform over the stage's duration in the reference run."""
    order = list(windows)
    cycle = rng.sample(order, len(order))
    plans: list[list] = []
    while kills > 0:
        label = cycle[len(plans) % len(cycle)]
        plan = [(label, rng.uniform(0, windows[label]))]
        # none after a kill aimed at `finish`: that resume only writes stats.json, logging no stage
        while len(plan) < kills and label != order[-1] and rng.random() < rekill:
            label = rng.choice(order[order.index(label):])
            plan.append((label, rng.uniform(0, windows[label])))
        plans.append(plan)
        kills -= len(plan)
    return plans


def draw_write_points(kills: int, written: list[str], rng: random.Random) -> list[list]:
    """One kill per trial, right after the K-th of the reference run's committed files, K drawn
    from `kills` equal slices of them."""
    n = len(written)
    return [[(WRITE, rng.randrange(i * n // kills, (i + 1) * n // kills) + 1)] for i in range(kills)]


def table(trials: list[Trial], order: list[str]) -> str:
    """Per stage: kills landed (of them in a resume), trials identical and different among
    those with a kill there, and failed resumes from there."""
    rows = {label: Counter() for label in order}
    for trial in trials:
        for i, label in enumerate(trial.kills):
            row = rows.setdefault(label, Counter())
            row["kills"] += 1
            row["in_resume"] += i > 0
        for label in dict.fromkeys(trial.kills):
            rows[label]["identical" if trial.identical else "different"] += 1
        for label in trial.failed_resumes:
            rows.setdefault(label, Counter())["failed"] += 1
    lines = [f"{'stage':<24} {'kills landed':>12} {'in a resume':>11} {'identical':>9} {'different':>9} "
             f"{'failed resumes':>14}"]
    for label, row in rows.items():
        lines.append(f"{label:<24} {row['kills']:>12} {row['in_resume']:>11} {row['identical']:>9} "
                     f"{row['different']:>9} {row['failed']:>14}")
    total = sum((r for r in rows.values()), Counter())
    lines.append(f"{'all':<24} {total['kills']:>12} {total['in_resume']:>11} "
                 f"{sum(t.identical for t in trials):>9} {sum(not t.identical for t in trials):>9} "
                 f"{total['failed']:>14}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs in all (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rekill", type=float, default=0.5, help="chance that a resume is killed too (default 0.5)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one, deleted after)")
    p.add_argument("--keep-intermediate", action="store_true", help="run unfused: every map stage writes its parts")
    p.add_argument("--unwritten-read", action="store_true", help="read.materialize: false and extract fused with "
                   "the filters: no raw or extracted copy, the read tasks run the first map stages")
    p.add_argument("--write-points", action="store_true", help="aim each kill right after a file the run commits "
                   "(spread evenly over the reference run's files) instead of at a moment")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="thresher-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        config = write_config(work, [SHARED / "warc_real_crawls"], args.unwritten_read)
        extra = ("--keep-intermediate",) if args.keep_intermediate else ()
        reference = run_thresher(config, work / "reference", (WRITE, 0) if args.write_points else None, extra=extra)
        if reference.returncode:
            raise SystemExit(f"the reference run failed:\n{reference.log[-2000:]}")
        windows = phase_windows(reference)
        order = list(windows)
        print(f"reference run: {reference.seconds:.1f} s; stages start at "
              + ", ".join(f"{k} {v:.1f}s" for k, v in reference.phases.items()), flush=True)
        trials = []
        if args.write_points:
            plans = draw_write_points(args.kills, (work / "reference.writes").read_text().splitlines(), rng)
        else:
            plans = draw_targets(args.kills, windows, args.rekill, rng)
        for i, plan in enumerate(plans):
            trial = run_trial(config, work / "reference", work / f"trial-{i:03d}", plan, order, extra)
            trials.append(trial)
            aims = ", ".join(f"{label} +{delay:.2f}s" if label != WRITE else f"file {delay}" for label, delay in plan)
            missed = f" ({trial.missed} missed: the run ended first)" if trial.missed else ""
            print(f"trial {i}: kills aimed at {aims}; landed in {', '.join(trial.kills) or '(none)'}{missed}; "
                  f"{'identical' if trial.identical else 'DIFFERENT'}; {trial.seconds:.0f} s", flush=True)
            for problem in trial.problems:
                print(f"  {problem}", flush=True)
            if trial.identical:
                shutil.rmtree(work / f"trial-{i:03d}")
        print(table(trials, order))
        return 0 if all(t.identical and not t.failed_resumes for t in trials) else 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
