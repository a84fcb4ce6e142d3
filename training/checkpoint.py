"""Distributed checkpoints (torch.distributed.checkpoint): save, resume, and init_from.

A checkpoint is `OUTPUT/checkpoints/step-000050/` (or under `checkpoint.folder`, which may be
an fsspec URL such as `s3://bucket/run/checkpoints`), written by every rank in parallel (each
writes its own shards of the model and AdamW state). Beside the tensors it holds one JSON
string, the trainer state: step, LR scheduler, data loader state (a global counter, see
training/data.py) and the RNG state; and a copy of the run's metrics.jsonl up to that step,
which a resume on a machine without the output folder restores. DCP stores tensors with their
global shapes, so the checkpoint loads on any number of ranks (2 -> 1 reshards on load).

A checkpoint is complete when its last file, `_complete.json`, is in place: it lists every other
file with its size and (on a filesystem) its crc32, and `verify` checks them before a checkpoint
is used. On a filesystem the checkpoint is written under `step-000050.tmp` and renamed when
complete, so a run killed mid-save resumes from the previous one; the rename survives a copy cut
short or a file truncated on a network file system only as far as the marker's check, hence the
crc32 (an error check, not a tamper check: ~4 GB/s per core, ~3x sha256; the files are split
over the ranks, so the check costs one extra read of the checkpoint, shared by all ranks, at save
and at load). Checkpoints from before the marker load unverified. On an object store there is no
rename: the checkpoint is written in place and `_complete.json`, written last, commits it (a
folder without it is a save cut short, ignored and overwritten). Its files are checked by size
only: an object is stored whole or not at all and the client checks each upload's integrity,
and reading a checkpoint back over the network to checksum it would double its traffic.

    ckpt = Checkpointer(Path(out) / "checkpoints", keep=2)      # or Checkpointer("s3://b/run/ckpt", 2)
    ckpt.save(50, model, optimizer, {"step": 50, ...}); state = ckpt.load(ckpt.latest(), model, optimizer)
    load_weights(model, "out/pretrain/checkpoints")     # domain adaptation: weights only
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader, FsspecWriter
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from pipeline import storage
from pipeline.io import write_bytes

PREFIX = "step-"
MARKER = "_complete.json"
LOG = "metrics.jsonl"  # the run's metrics log up to the checkpoint's step, kept in the checkpoint
CHUNK = 16 << 20

Location = Path | str  # a local folder, or a URL (s3://...) as a string


def _is_url(path: Location) -> bool:
    return not storage.is_local(os.fspath(path))


def _step(path: Location) -> int:
    return int(storage.basename(path)[len(PREFIX):])


def complete_checkpoints(folder: Location) -> list[Location]:
    """Finished checkpoints, oldest first (`.tmp` ones were interrupted mid-save, `.corrupt` ones
    failed verification; on an object store, a folder without its marker was cut short)."""
    if _is_url(folder):
        names = [n for n in storage.listdir(folder) if n.startswith(PREFIX) and n[len(PREFIX):].isdigit()]
        done = [storage.join(folder, n) for n in names if storage.isfile(storage.join(folder, n, MARKER))]
        return sorted(done, key=_step)
    folder = Path(folder)
    if not folder.is_dir():
        return []
    done = [p for p in folder.iterdir() if p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()
            and (p / ".metadata").is_file()]
    return sorted(done, key=_step)


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


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _object_sizes(folder: str) -> dict[str, int]:
    """Name -> size of the files directly in an object-store folder, from one listing."""
    return {name: int(e["size"]) for name, e in storage.list_details(folder).items() if e.get("type") == "file"}


def write_marker(folder: Location) -> None:
    """Collective: list the checkpoint's files in `_complete.json` (written by rank 0): their
    sizes, and on a filesystem the crc32 each rank computes for its share of them."""
    if _is_url(folder):
        if _rank() == 0:
            files = {name: {"bytes": size} for name, size in sorted(_object_sizes(folder).items()) if name != MARKER}
            write_bytes(json.dumps({"files": files}, indent=1).encode(), storage.join(folder, MARKER))
        return
    folder = Path(folder)
    names = [sorted(p.name for p in folder.iterdir() if p.is_file()) if _rank() == 0 else None]
    if dist.is_initialized():
        dist.broadcast_object_list(names, src=0)  # one listing, so the shares do not overlap or miss
    mine = {name: {"bytes": (folder / name).stat().st_size, "crc32": crc32(folder / name)}
            for name in _my_share(names[0])}
    files = {name: entry for share in _gather(mine) for name, entry in share.items()}
    if _rank() == 0:
        (folder / MARKER).write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=1))


def _read_marker(folder: Location) -> dict:
    raw = storage.read_bytes(storage.join(os.fspath(folder), MARKER))
    return {name: {"bytes": int(entry["bytes"]), **({"crc32": int(entry["crc32"])} if "crc32" in entry else {})}
            for name, entry in json.loads(raw)["files"].items()}


def _problems(folder: Location) -> list[str]:
    """What is wrong with this rank's share of the checkpoint's files ([]: none found)."""
    if not storage.isfile(storage.join(os.fspath(folder), MARKER)):
        return []  # written before markers existed: unverified, but usable
    try:
        files = _read_marker(folder)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return [f"{MARKER} is unreadable ({type(error).__name__})"] if _rank() == 0 else []
    if _is_url(folder):  # sizes from one listing, on rank 0 (a listing is cheap; the others find nothing)
        if _rank() != 0:
            return []
        sizes = _object_sizes(os.fspath(folder))
        return [_size_problem(name, sizes.get(name), entry["bytes"]) for name, entry in sorted(files.items())
                if sizes.get(name) != entry["bytes"]]
    problems = []
    for name in _my_share(sorted(files)):
        path, expected = Path(folder) / name, files[name]
        size = path.stat().st_size if path.is_file() else None
        if size != expected["bytes"]:
            problems.append(_size_problem(name, size, expected["bytes"]))
        elif "crc32" in expected and crc32(path) != expected["crc32"]:
            problems.append(f"{name} fails its crc32 check: corrupt bytes")
    return problems


def _size_problem(name: str, size: int | None, expected: int) -> str:
    if size is None:
        return f"{name} is missing"
    return f"{name} is {size} bytes, {expected} expected: truncated"


def verify(folder: Location) -> str | None:
    """Collective: the first problem any rank found in the checkpoint, the same on every rank;
    None when it is intact (or has no marker to check against)."""
    problems = sorted(p for share in _gather(_problems(folder)) for p in share)
    return problems[0] if problems else None


def init_candidates(path: Location) -> list[Location]:
    """For `checkpoint.init_from`: a step directory, or the finished ones under a checkpoints/ or
    run output directory (local or a URL), newest first."""
    path = os.fspath(path) if _is_url(path) else Path(path)
    if storage.isfile(storage.join(os.fspath(path), ".metadata")):
        return [path]
    for folder in (path, storage.join(path, "checkpoints") if _is_url(path) else path / "checkpoints"):
        found = complete_checkpoints(folder)
        if found:
            return found[::-1]
    raise FileNotFoundError(f"checkpoint.init_from: no finished checkpoint at {path}")


def resolve_checkpoint(path: Location, warn=print) -> Location:
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


def storage_reader(path: Location):
    """A DCP reader for `path`: a filesystem one, or an fsspec one with the URL's storage options
    (configured, else the environment's)."""
    if _is_url(path):
        return FsspecReader(os.fspath(path), **storage.options_for(os.fspath(path)))
    return dcp.FileSystemReader(path)


def unwritable(folder: Location) -> str | None:
    """Why checkpoints cannot be written to `folder` (a probe file written and deleted), or None:
    a missing bucket or a read-only mount then fails the run before its first step, not at
    its first save."""
    probe = storage.join(os.fspath(folder), f"_write-check-{os.getpid()}")
    try:
        storage.makedirs(folder)
        write_bytes(b"", probe)
        storage.rm(probe, recursive=False)
    except Exception as error:  # any failure is the answer, told in one line
        why = (str(error).splitlines() or [""])[0]
        return f"checkpoint.folder: cannot write to {folder} ({type(error).__name__}: {why})"
    return None


class Checkpointer:
    """This run's checkpoints under `folder`, a local folder or a URL."""

    def __init__(self, folder: Location, keep: int):
        self.folder, self.keep = folder, keep
        self.url = _is_url(folder)

    def check_writable(self) -> None:
        """Collective: raise on every rank when rank 0 cannot write to the folder."""
        problem = [unwritable(self.folder) if _rank() == 0 else None]
        if dist.is_initialized():
            dist.broadcast_object_list(problem, src=0)
        if problem[0]:
            raise ValueError(problem[0])

    def latest(self) -> Location | None:
        found = complete_checkpoints(self.folder)
        return found[-1] if found else None

    def latest_intact(self, warn) -> Location | None:
        """Collective: the newest checkpoint that passes `verify`. A corrupt one is moved to
        `step-N.corrupt` (kept for inspection, never loaded or counted again) with a warning;
        on an object store the move copies it, the marker deleted first."""
        for path in reversed(complete_checkpoints(self.folder)):
            problem = verify(path)
            if not problem:
                return path
            aside = f"{os.fspath(path)}.corrupt"
            warn(f"warning: checkpoint {path} is corrupt ({problem}); moved to {storage.basename(aside)}, "
                 "resuming from the previous one")
            if _rank() == 0:
                storage.rm(aside)
                if self.url:
                    storage.move(os.fspath(path), aside, delete_first=(MARKER,))
                else:
                    Path(path).rename(aside)
            _barrier()
        return None

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer: dict,
             log: Path | None = None) -> Location:
        """Collective: write the checkpoint of `step` (with a copy of the metrics `log`, when
        given: a run resumed on a machine without the output folder gets its history back)."""
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state, "trainer": json.dumps(trainer)}
        if self.url:
            return self._save_in_place(step, state, log)
        final = Path(self.folder) / f"{PREFIX}{step:06d}"
        tmp = final.with_name(final.name + ".tmp")
        if _rank() == 0 and tmp.exists():
            shutil.rmtree(tmp)  # left by a run killed while saving this step
        _barrier()
        dcp.save(state, checkpoint_id=tmp)
        if _rank() == 0 and log is not None and log.is_file():
            shutil.copyfile(log, tmp / LOG)
        _barrier()  # every rank's shards are on disk before they are checksummed
        write_marker(tmp)
        if _rank() == 0:
            if final.exists():  # an unverified (pre-marker) checkpoint of this step, or a copy
                shutil.rmtree(final)
            tmp.rename(final)
            for old in complete_checkpoints(self.folder)[: -self.keep]:
                shutil.rmtree(old)
        _barrier()
        return final

    def _save_in_place(self, step: int, state: dict, log: Path | None) -> str:
        """Object store: no rename, so write in place and commit with the marker, written last
        (after every rank's files). Leftovers of a save cut short go first; an old checkpoint
        loses its marker before its files, so a delete cut short never leaves a complete-looking
        checkpoint with files missing."""
        final = storage.join(os.fspath(self.folder), f"{PREFIX}{step:06d}")
        if _rank() == 0:
            _remove(final)
        _barrier()
        dcp.save(state, storage_writer=FsspecWriter(final, **storage.options_for(final)))
        if _rank() == 0 and log is not None and log.is_file():
            fs, key = storage.filesystem(storage.join(final, LOG))
            fs.put_file(str(log), key)
        _barrier()  # every rank's objects are stored before they are listed
        write_marker(final)
        if _rank() == 0:
            for old in complete_checkpoints(self.folder)[: -self.keep]:
                _remove(old)
        _barrier()
        return final

    @staticmethod
    def restore_log(path: Location, log: Path) -> bool:
        """Rank 0: bring back the metrics log saved in checkpoint `path` when `log` is missing
        (a fresh machine); True if it did."""
        saved = storage.join(os.fspath(path), LOG)
        if _rank() != 0 or log.exists() or not storage.isfile(saved):
            return False
        log.parent.mkdir(parents=True, exist_ok=True)
        fs, key = storage.filesystem(saved)
        fs.get_file(key, str(log))
        return True

    @staticmethod
    def load(path: Location, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """Restore model and optimizer in place; return the trainer state saved with them."""
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state, "trainer": ""}
        dcp.load(state, storage_reader=storage_reader(path))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        return json.loads(state["trainer"])


def _remove(url: str) -> None:
    """Delete an object-store checkpoint folder, its marker first."""
    storage.rm(storage.join(url, MARKER), recursive=False)
    storage.rm(url)


def _check_shapes(path: Location, model_state: dict) -> None:
    """Fail with the first differing weight when the checkpoint is of another model shape."""
    saved = storage_reader(path).read_metadata().state_dict_metadata
    for name, tensor in model_state.items():
        entry = saved.get(f"model.{name}")
        if entry is None or tuple(entry.size) != tuple(tensor.shape):
            have = "missing" if entry is None else tuple(entry.size)
            raise ValueError(f"checkpoint.init_from: {path} does not fit the model config: {name} is {have} "
                             f"there, {tuple(tensor.shape)} here; use the model settings it was trained with")


def load_weights(model: torch.nn.Module, path: Location, warn=print) -> Location:
    """Model weights only from a checkpoint (the torchtitan/litgpt `init_from` convention)."""
    path = resolve_checkpoint(path, warn)
    state = {"model": get_model_state_dict(model)}
    _check_shapes(path, state["model"])
    dcp.load(state, storage_reader=storage_reader(path))
    set_model_state_dict(model, state["model"])
    return path
