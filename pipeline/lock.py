"""One run at a time per folder: a lock object `_lock.json` that names its holder.

Two things a run writes must not be shared with another run at the same time: its output folder
(`thresher run` takes `OUTPUT/_lock.json` before the first stage; pipeline/runner.py) and an
incremental dedup index (`INDEX/<kind>/_lock.json`, taken by the stages that read and commit
it; dedup/index.py). The lock holds the host, pid and start time of the `thresher` process, the
output it writes, when it took the lock, a heartbeat and a random token, and a second run
refuses to start while a live run holds it, with one line (`thresher` exits with status 75):

    thresher: error: output: /data/runs/oct is in use by host node7 pid 4242 (started
    2026-10-02T10:00:00Z); wait for that run, or delete /data/runs/oct/_lock.json if it is gone

Create-if-absent: local disk writes a temp file and hard-links it to the lock's name (which fails
if the name exists); S3 a PUT with `If-None-Match: *` (s3fs's `mode="create"`; AWS S3 and
S3-compatible stores that honour it, moto included); other fsspec stores (gs://, ...) check then
write, which two runs starting in the same second can both pass.

A crashed holder does not keep the lock: it is stale when its process is gone from this host
(or the pid now belongs to a process started at another time), or when its heartbeat, which a
holder's thread refreshes every `HEARTBEAT_S` (60 s), is older than `STALE_AFTER_S` (10 min; a
holder on another host that died or lost the store). A stale lock is deleted and taken, with a
one-line notice; taking one is the race-prone step (two runs taking the same stale lock at once,
or a holder whose heartbeat stalled for 10 minutes), so the holder re-reads its token before it
commits (`ensure_held`) and refuses to commit if the lock was taken from it.

    acquire("out/web", "out/web", "output")   # ... release("out/web")
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import psutil

from pipeline import storage
from pipeline.io import read_json, write_bytes
from pipeline.progress import log

LOCK = "_lock.json"
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0


class Locked(ValueError):
    """Another live run holds the folder: one line, and `thresher` exits with status 75 (try later)."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (Python 3.10)


def iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def process_start(pid: int) -> float | None:
    try:
        return round(psutil.Process(pid).create_time(), 2)
    except psutil.Error:
        return None


def _me(output: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid()),
            "output": output}


def stale_reason(holder: dict, at: datetime.datetime | None = None) -> str | None:
    """Why `holder`'s run is gone (its process left this host, or its heartbeat stopped), or
    None while it may be alive."""
    if holder.get("host") == socket.gethostname():  # a process here is alive or not: no need to wait
        started = process_start(int(holder.get("pid", -1)))
        return None if started is not None and started == holder.get("started") else "its process is gone"
    beat = datetime.datetime.fromisoformat(holder.get("heartbeat", "1970-01-01T00:00:00+00:00").replace("Z", "+00:00"))
    silent = ((at or now()) - beat).total_seconds()
    return f"no heartbeat for {silent / 60:.0f} min" if silent > STALE_AFTER_S else None


def is_stale(holder: dict, at: datetime.datetime | None = None) -> bool:
    return stale_reason(holder, at) is not None


def describe(holder: dict, folder: str | None = None) -> str:
    """`host H pid P (output O, started T)`; the output left out when it is the locked folder."""
    output = holder.get("output")
    where = f"output {output}, " if output and output != folder else ""
    return f"host {holder.get('host')} pid {holder.get('pid')} ({where}started {holder.get('since')})"


def in_use(setting: str, folder: str, holder: dict) -> Locked:
    return Locked(f"{setting}: {folder} is in use by {describe(holder, folder)}; wait for that run, or delete "
                  f"{storage.join(folder, LOCK)} if it is gone")


def create_if_absent(url: str, data: bytes) -> bool:
    """Write `data` to `url` unless it exists; whether this call created it."""
    if storage.is_local(url):
        # A hard link is created whole or fails if the name exists: no reader sees half a lock.
        os.makedirs(os.path.dirname(url), exist_ok=True)
        tmp = f"{url}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.link(tmp, url)
        except FileExistsError:
            return False
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return True
    fs, path = storage.filesystem(url)
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    return True


def read_holder(folder: str) -> dict | None:
    try:
        return read_json(storage.join(folder, LOCK))
    except (FileNotFoundError, json.JSONDecodeError):  # gone (or not a lock this module wrote)
        return None


class _Held:
    """A lock this process holds, with the thread that keeps its heartbeat fresh."""

    def __init__(self, folder: str, record: dict):
        self.folder, self.record, self.lost = folder, record, False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"lock {folder}", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                if not self.owned():
                    self.lost = True
                    return
                self.record["heartbeat"] = iso(now())
                write_bytes(json.dumps(self.record).encode(), storage.join(self.folder, LOCK))
            except OSError:  # the store is unreachable (or full) for now: try again at the next beat
                continue

    def owned(self) -> bool:
        current = read_holder(self.folder)
        return current is not None and current.get("token") == self.record["token"]


_HELD: dict[str, _Held] = {}


def acquire(folder: str, output: str, setting: str) -> None:
    """Hold `folder`'s lock for this process and `output` (re-entrant: the MinHash stages of one
    run take it one after another); raise Locked, naming the holder, if another live run has it.
    A stale lock is taken over with a one-line notice on stderr."""
    held = _HELD.get(folder)
    if held is not None and held.record["output"] == output and held.owned():
        return
    for attempt in range(20):
        record = {**_me(output), "since": iso(now()), "heartbeat": iso(now()), "token": uuid.uuid4().hex}
        if create_if_absent(storage.join(folder, LOCK), json.dumps(record).encode()):
            _HELD[folder] = _Held(folder, record)
            return
        holder = read_holder(folder)
        if holder is None:  # released meanwhile (or unreadable: taken over below after a few tries)
            if attempt >= 3:
                storage.rm(storage.join(folder, LOCK), recursive=False)
            time.sleep(0.1)
            continue
        if (reason := stale_reason(holder)) is None:
            raise in_use(setting, folder, holder)
        log(f"{setting}: taking over the lock on {folder} from {describe(holder, folder)}: {reason}")
        storage.rm(storage.join(folder, LOCK), recursive=False)
    raise Locked(f"{setting}: could not take the lock on {folder} (other runs keep taking it); try again")


def check_free(folder: str, output: str, setting: str) -> None:
    """Refuse early (before the run does any work) when a live run holds `folder`."""
    holder = read_holder(folder)
    mine = holder is not None and {k: holder.get(k) for k in ("host", "pid", "started")} == {
        k: v for k, v in _me(output).items() if k != "output"}
    if holder is not None and not mine and not is_stale(holder):
        raise in_use(setting, folder, holder)


def ensure_held(folder: str, setting: str) -> None:
    """Before a commit: this process must still hold the lock it took."""
    held = _HELD.get(folder)
    if held is None or held.lost or not held.owned():
        raise Locked(f"{setting}: lost the lock on {folder} to {describe(read_holder(folder) or {}, folder)} "
                     "before committing; nothing was committed: run again")


def release(folder: str) -> None:
    held = _HELD.pop(folder, None)
    if held is None:
        return
    held.stop.set()
    if held.owned():
        storage.rm(storage.join(folder, LOCK), recursive=False)


@contextlib.contextmanager
def held(folder: str, output: str, setting: str) -> Iterator[None]:
    """`acquire` around a block; released however the block ends (SIGKILL leaves it stale)."""
    acquire(folder, output, setting)
    try:
        yield
    finally:
        release(folder)


@atexit.register
def _release_all() -> None:
    """A run that ends (also by an exception) gives its locks back; SIGKILL leaves them stale."""
    for folder in list(_HELD):
        try:
            release(folder)
        except Exception:  # best effort at exit: a stale lock is taken over anyway
            pass
