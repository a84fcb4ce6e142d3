"""Stage folders left by an earlier config: cleared before a run, ignored by what reads a run.

A run writes `00-read` and `NN-<stage>` for the stages of its config (`planned_dirs`). Before the
first stage runs, the runner holds the output folder against that plan (`clear_stale`):

- a stage folder the config no longer names (a stage removed, renamed or moved to another
  position) is moved to `OUTPUT/_stale/<run-id>/NN-name`, or deleted with
  `thresher run --remove-stale`: nothing would ever rewrite it, and left in place it would be
  counted by whatever reads the output;
- a folder the config names but whose fingerprint differs (params, inputs, seed or an earlier
  stage changed) is deleted, as the runner always did when it recomputed a changed stage, only
  before the first stage rather than when this one starts: a run that stops early then leaves
  no output of the earlier config beside the new `config.yaml`. Its line says why, from what
  the folder recorded (its manifest's params, and the fingerprint of its input that
  `_stage.json` holds):

      [02-min_chars] made with other settings, removed to be recomputed: params changed (min_chars: 20 -> 10)
      [03-pii] made with other settings, removed to be recomputed: an earlier stage changed (02-min_chars)

Each is logged in one line. A folder counts as a stage folder only if its name is `NN-name` and
it holds the runner's `_stage.json` or `_manifest.json`: anything else in OUTPUT is left alone.
`configured_dirs` gives the folders that `OUTPUT/config.yaml` names, which `thresher stats` and
`thresher head` read, ignoring every other folder.

    clear_stale("out/web", [("00-read", "9f3c..."), ("01-extract", "51aa...")])
"""

from __future__ import annotations

import json
import re
import time

import yaml

from pipeline import storage
from pipeline.io import read_json
from pipeline.progress import log

STALE = "_stale"
STAGE_DIR = re.compile(r"^(\d{2,})-(.+)$")
MARKERS = ("_manifest.json", "_stage.json")  # the manifest is written last and marks a stage done


def planned_dirs(stage_names: list[str]) -> list[str]:
    """The folders a run of these stages writes, in order."""
    return ["00-read"] + [f"{i:02d}-{name}" for i, name in enumerate(stage_names, start=1)]


def configured_dirs(out: str) -> list[str] | None:
    """The stage folders named by `out/config.yaml` (written by every run), or None when
    there is none to read (an output from before runs wrote one, or not a run at all)."""
    file = storage.join(out, "config.yaml")
    if not storage.isfile(file):
        return None
    try:
        stages = (yaml.safe_load(storage.read_bytes(file)) or {}).get("stages") or []
    except (yaml.YAMLError, AttributeError):
        return None
    return planned_dirs([next(iter(s)) if isinstance(s, dict) else str(s) for s in stages])


def recorded_fingerprint(folder: str) -> str | None:
    """The fingerprint a stage folder was made with: its manifest's, else the one its
    unfinished run declared in `_stage.json`; None when it holds neither."""
    for marker in MARKERS:
        file = storage.join(folder, marker)
        if storage.exists(file):
            return read_json(file).get("fingerprint")
    return None


def is_stage_folder(out: str, name: str) -> bool:
    folder = storage.join(out, name)
    return bool(STAGE_DIR.match(name)) and any(storage.exists(storage.join(folder, m)) for m in MARKERS)


def find_stale(out: str, plan: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(stage folders in `out` that `plan` does not name, planned folders made with another
    fingerprint), by name. `plan` is the run's (folder name, fingerprint) list."""
    wanted = dict(plan)
    unnamed, changed = [], []
    for name in storage.listdir(out):
        if not is_stage_folder(out, name):
            continue
        if name not in wanted:
            unnamed.append(name)
        elif recorded_fingerprint(storage.join(out, name)) != wanted[name]:
            changed.append(name)
    return unnamed, changed


def recorded_state(folder: str) -> dict:
    """What a stage folder says it was made with: `_stage.json` (its input's fingerprint, from
    runs that record it) under the manifest (its params)."""
    state: dict = {}
    for marker in reversed(MARKERS):
        file = storage.join(folder, marker)
        if storage.exists(file):
            state.update(read_json(file))
    return state


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def change_reason(out: str, name: str, changed: list[str], planned: dict | None) -> str:
    """Why planned folder `name` (made with another fingerprint) is recomputed: its params
    (naming them), an earlier stage (the first one changed), or what else its fingerprint holds.
    `planned`: this run's {"params": ..., "input": the fingerprint of its input} for it."""
    if name == planned_dirs([])[0]:
        return "its inputs or read settings changed"
    recorded, planned = recorded_state(storage.join(out, name)), planned or {}
    reasons = []
    old, new = recorded.get("params"), planned.get("params")
    if isinstance(old, dict) and isinstance(new, dict) and old != new:
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        reasons.append("params changed (" + ", ".join(f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}"
                                                     for k in keys) + ")")
    position = lambda folder: int(STAGE_DIR.match(folder).group(1))  # noqa: E731
    earlier = sorted((n for n in changed if position(n) < position(name)), key=position)
    if earlier:
        reasons.append(f"an earlier stage changed ({earlier[0]})")
    elif "input" in recorded and recorded["input"] != planned.get("input"):
        reasons.append("its input changed (an earlier stage was recomputed since)")
    return "; ".join(reasons) or "its scope, the seed, the thresher version or an earlier stage changed"


def clear_stale(out: str, plan: list[tuple[str, str]], remove: bool = False, run_id: str | None = None,
                planned: dict[str, dict] | None = None) -> list[str]:
    """Delete the planned folders made with another fingerprint, saying why for each (`planned`:
    folder name -> this run's params and input fingerprint, see `change_reason`); move the stage
    folders the plan does not name to `out/_stale/<run_id>/` (delete them when `remove`).
    Returns where the moved folders went."""
    unnamed, changed = find_stale(out, plan)
    reasons = {name: change_reason(out, name, changed, (planned or {}).get(name)) for name in changed}
    for name in changed:
        storage.rm(storage.join(out, name))
        log(f"[{name}] made with other settings, removed to be recomputed: {reasons[name]}")
    if not unnamed:
        return []
    if remove:
        for name in unnamed:
            storage.rm(storage.join(out, name))
            log(f"[{name}] not in the config: removed (--remove-stale)")
        return []
    target = storage.join(out, STALE, run_id or new_run_id(out))
    moved = []
    for name in unnamed:
        moved.append(storage.join(target, name))
        storage.move(storage.join(out, name), moved[-1], delete_first=MARKERS)
        log(f"[{name}] not in the config: moved to {moved[-1]} (thresher run --remove-stale deletes instead)")
    return moved


def new_run_id(out: str) -> str:
    """A folder name under `out/_stale` for this run: its UTC start time, made unique."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    taken = set(storage.listdir(storage.join(out, STALE)))
    run_id, n = stamp, 1
    while run_id in taken:
        run_id, n = f"{stamp}-{n}", n + 1
    return run_id
