"""Distributed checkpoints (torch.distributed.checkpoint): save, resume, and init_from.

A checkpoint is `OUTPUT/checkpoints/step-000050/`, written by every rank in parallel (each
writes its own shards of the model and AdamW state) under `step-000050.tmp` and renamed when
complete, so a run killed mid-save resumes from the previous one. Beside the tensors it holds
one JSON string, the trainer state: step, LR scheduler, data loader state (a global counter,
see training/data.py) and the RNG state. DCP stores tensors with their global shapes, so the
checkpoint loads on any number of ranks (2 -> 1 reshards on load).

    ckpt = Checkpointer(Path(out) / "checkpoints", keep=2)
    ckpt.save(50, model, optimizer, {"step": 50, ...}); state = ckpt.load(ckpt.latest(), model, optimizer)
    load_weights(model, "out/pretrain/checkpoints")     # domain adaptation: weights only
"""

from __future__ import annotations

import json
import shutil
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


def complete_checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoints, oldest first (`.tmp` ones were interrupted mid-save)."""
    if not folder.is_dir():
        return []
    done = [p for p in folder.iterdir() if p.name.startswith(PREFIX) and p.suffix != ".tmp"
            and (p / ".metadata").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def resolve_checkpoint(path: str | Path) -> Path:
    """A step directory, or the newest one under a checkpoints/ or run output directory."""
    path = Path(path)
    if (path / ".metadata").is_file():
        return path
    for folder in (path, path / "checkpoints"):
        found = complete_checkpoints(folder)
        if found:
            return found[-1]
    raise FileNotFoundError(f"checkpoint.init_from: no finished checkpoint at {path}")


class Checkpointer:
    def __init__(self, folder: Path, keep: int):
        self.folder, self.keep = folder, keep

    def latest(self) -> Path | None:
        found = complete_checkpoints(self.folder)
        return found[-1] if found else None

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer: dict) -> Path:
        final = self.folder / f"{PREFIX}{step:06d}"
        tmp = final.with_name(final.name + ".tmp")
        if dist.get_rank() == 0 and tmp.exists():
            shutil.rmtree(tmp)  # left by a run killed while saving this step
        dist.barrier()
        model_state, optim_state = get_state_dict(model, optimizer)
        dcp.save({"model": model_state, "optim": optim_state, "trainer": json.dumps(trainer)}, checkpoint_id=tmp)
        dist.barrier()  # every rank's shards are on disk before the rename marks it complete
        if dist.get_rank() == 0:
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


def load_weights(model: torch.nn.Module, path: str | Path) -> Path:
    """Model weights only from a checkpoint (the torchtitan/litgpt `init_from` convention)."""
    path = resolve_checkpoint(path)
    state = {"model": get_model_state_dict(model)}
    _check_shapes(path, state["model"])
    dcp.load(state, checkpoint_id=path)
    set_model_state_dict(model, state["model"])
    return path
