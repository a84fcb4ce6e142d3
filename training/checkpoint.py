"""Distributed checkpoints (torch.distributed.checkpoint): save, resume, and init_from.

A checkpoint is `OUTPUT/checkpoints/step-000050/`, written by every rank in parallel (each
writes its own shards of the model and AdamW state) under `step-000050.tmp` and renamed when
complete, so a run killed mid-save resumes from the previous one. Beside the tensors it holds
one JSON string, the trainer state: step, LR scheduler, data loader state (a global counter,
see training/data.py) and the RNG state. DCP stores tensors with their global shapes, so the
checkpoint loads on any number of ranks (2 -> 1 reshards on load).

A renamed checkpoint can still go bad (a disk error, a copy cut short, a file truncated on a
network file system), so the last file written into it, `_complete.json`, lists every other file
with its size and crc32, and `verify` checks them before a checkpoint is used. crc32 (an error
check, not a tamper check) reads at ~4 GB/s per core, ~3x sha256; the files are split over the
ranks, so the check costs one extra read of the checkpoint, shared by all ranks, at save and at
load (a 1.5 GB 125M-parameter checkpoint: ~0.4 s on one rank). Every rank gathers all ranks'
findings, so all agree on the verdict. Checkpoints from before the marker load unverified.

    ckpt = Checkpointer(Path(out) / "checkpoints", keep=2)
    ckpt.save(50, model, optimizer, {"step": 50, ...}); state = ckpt.load(ckpt.latest(), model, optimizer)
    load_weights(model, "out/pretrain/checkpoints")     # domain adaptation: weights only
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

PREFIX = "step-"
MARKER = "_complete.json"
CHUNK = 16 << 20


def complete_checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoints, oldest first (`.tmp` ones were interrupted mid-save, `.corrupt` ones
    failed verification)."""
    if not folder.is_dir():
        return []
    done = [p for p in folder.iterdir() if p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()
            and (p / ".metadata").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def crc32(path: Path) -> int:
    value = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            value = zlib.crc32(chunk, value)
    return value


def _my_share(names: list[str]) -> list[str]:
    if not dist.is_initialized():  # one process loading weights to score with (filters/lm_score.py)
        return names
    return names[dist.get_rank()::dist.get_world_size()]


def _gather(mine):
    if not dist.is_initialized():
        return [mine]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return everyone


def write_marker(folder: Path) -> None:
    """Collective: every rank checksums its share of the files, rank 0 writes `_complete.json`."""
    names = [sorted(p.name for p in folder.iterdir() if p.is_file()) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(names, src=0)  # one listing, so the shares do not overlap or miss
    mine = {name: {"bytes": (folder / name).stat().st_size, "crc32": crc32(folder / name)}
            for name in _my_share(names[0])}
    files = {name: entry for share in _gather(mine) for name, entry in share.items()}
    if dist.get_rank() == 0:
        (folder / MARKER).write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=1))


def _problems(folder: Path) -> list[str]:
    """What is wrong with this rank's share of the checkpoint's files ([]: none found)."""
    if not (folder / MARKER).exists():
        return []  # written before markers existed: unverified, but usable
    try:
        files = {name: {"bytes": int(entry["bytes"]), "crc32": int(entry["crc32"])}
                 for name, entry in json.loads((folder / MARKER).read_text())["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return [f"{MARKER} is unreadable ({type(error).__name__})"] if dist.get_rank() == 0 else []
    problems = []
    for name in _my_share(sorted(files)):
        path, expected = folder / name, files[name]
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != expected["bytes"]:
            problems.append(f"{name} is {path.stat().st_size} bytes, {expected['bytes']} expected: truncated")
        elif crc32(path) != expected["crc32"]:
            problems.append(f"{name} fails its crc32 check: corrupt bytes")
    return problems


def verify(folder: Path) -> str | None:
    """Collective: the first problem any rank found in the checkpoint, the same on every rank;
    None when it is intact (or has no marker to check against)."""
    problems = sorted(p for share in _gather(_problems(folder)) for p in share)
    return problems[0] if problems else None


def init_candidates(path: str | Path) -> list[Path]:
    """For `checkpoint.init_from`: a step directory, or the finished ones under a checkpoints/ or
    run output directory, newest first."""
    path = Path(path)
    if (path / ".metadata").is_file():
        return [path]
    for folder in (path, path / "checkpoints"):
        found = complete_checkpoints(folder)
        if found:
            return found[::-1]
    raise FileNotFoundError(f"checkpoint.init_from: no finished checkpoint at {path}")


def resolve_checkpoint(path: str | Path, warn=print) -> Path:
    """Collective: the newest intact `init_from` candidate. A corrupt one is skipped with a
    warning but left in place, since it belongs to another run; a corrupt step directory named
    explicitly is an error."""
    candidates = init_candidates(path)
    for found in candidates:
        problem = verify(found)
        if not problem:
            return found
        if len(candidates) == 1:
            raise ValueError(f"checkpoint.init_from: {found} is corrupt ({problem}); point it at another checkpoint")
        warn(f"warning: checkpoint {found} is corrupt ({problem}); trying the previous one")
    raise ValueError(f"checkpoint.init_from: every checkpoint at {path} is corrupt; point it at another run")


class Checkpointer:
    def __init__(self, folder: Path, keep: int):
        self.folder, self.keep = folder, keep

    def latest(self) -> Path | None:
        found = complete_checkpoints(self.folder)
        return found[-1] if found else None

    def latest_intact(self, warn) -> Path | None:
        """Collective: the newest checkpoint that passes `verify`. A corrupt one is renamed
        `step-N.corrupt` (kept for inspection, never loaded or counted again) with a warning."""
        for path in reversed(complete_checkpoints(self.folder)):
            problem = verify(path)
            if not problem:
                return path
            aside = path.with_name(path.name + ".corrupt")
            warn(f"warning: checkpoint {path} is corrupt ({problem}); moved to {aside.name}, "
                 "resuming from the previous one")
            if dist.get_rank() == 0:
                shutil.rmtree(aside, ignore_errors=True)
                path.rename(aside)
            dist.barrier()
        return None

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer: dict) -> Path:
        final = self.folder / f"{PREFIX}{step:06d}"
        tmp = final.with_name(final.name + ".tmp")
        if dist.get_rank() == 0 and tmp.exists():
            shutil.rmtree(tmp)  # left by a run killed while saving this step
        dist.barrier()
        model_state, optim_state = get_state_dict(model, optimizer)
        dcp.save({"model": model_state, "optim": optim_state, "trainer": json.dumps(trainer)}, checkpoint_id=tmp)
        dist.barrier()  # every rank's shards are on disk before they are checksummed
        write_marker(tmp)
        if dist.get_rank() == 0:
            if final.exists():  # an unverified (pre-marker) checkpoint of this step, or a copy
                shutil.rmtree(final)
            tmp.rename(final)
            for old in complete_checkpoints(self.folder)[: -self.keep]:
                shutil.rmtree(old)
        dist.barrier()
        return final

    @staticmethod
    def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """Restore model and optimizer in place; return the trainer state saved with them."""
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state, "trainer": ""}
        dcp.load(state, checkpoint_id=path)
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        return json.loads(state["trainer"])


def _check_shapes(path: Path, model_state: dict) -> None:
    """Fail with the first differing weight when the checkpoint is of another model shape."""
    saved = dcp.FileSystemReader(path).read_metadata().state_dict_metadata
    for name, tensor in model_state.items():
        entry = saved.get(f"model.{name}")
        if entry is None or tuple(entry.size) != tuple(tensor.shape):
            have = "missing" if entry is None else tuple(entry.size)
            raise ValueError(f"checkpoint.init_from: {path} does not fit the model config: {name} is {have} "
                             f"there, {tuple(tensor.shape)} here; use the model settings it was trained with")


def load_weights(model: torch.nn.Module, path: str | Path, warn=print) -> Path:
    """Model weights only from a checkpoint (the torchtitan/litgpt `init_from` convention)."""
    path = resolve_checkpoint(path, warn)
    state = {"model": get_model_state_dict(model)}
    _check_shapes(path, state["model"])
    dcp.load(state, checkpoint_id=path)
    set_model_state_dict(model, state["model"])
    return path
