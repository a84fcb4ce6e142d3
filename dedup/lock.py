"""One run at a time per dedup index: a lock object `_lock.json` in the index folder.

A run reads an index and, at the end, commits what it kept; two runs doing that at once would
each miss the other's documents. So a stage that uses an index first creates `INDEX/_lock.json`
(host, pid and start time of the `thresher run` process, its output, when it took the lock, a
heartbeat and a random token) and refuses to start while another live run holds it:

    thresher: error: exact_dedup.index: s3://b/idx/exact is in use by host node7 pid 4242 (output
    s3://b/runs/oct, since 2024-10-02T10:00:00Z); wait for that run, or delete s3://b/idx/exact/_lock.json if it is gone

Create-if-absent: local disk uses `O_CREAT | O_EXCL`; S3 a PUT with `If-None-Match: *` (s3fs's
`mode="create"`, AWS S3 and S3-compatible stores that honour it, moto included); other fsspec
stores (gs://, ...) check then write, which two runs starting in the same second can both pass.

A crashed holder does not keep the lock: it is stale when its process is gone from this host
(or the pid now belongs to a process started at another time), or when its heartbeat, which a
holder's thread refreshes every `HEARTBEAT_S`, is older than `STALE_AFTER_S` (a holder on
another host that died). A stale lock is deleted and taken; taking one is the race-prone step
(two runs taking the same stale lock at once), so the holder re-reads its token before it
commits and refuses to commit if the lock was taken from it.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import socket
import threading
import time
import uuid

import psutil

from pipeline import storage
from pipeline.io import read_json, write_bytes

LOCK = "_lock.json"
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0


class IndexLocked(ValueError):
    """Another run holds the index. A ValueError, so `thresher` prints it as one line."""


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


def is_stale(holder: dict, at: datetime.datetime | None = None) -> bool:
    """Whether `holder`'s run is gone: its process left this host, or its heartbeat stopped."""
    if holder.get("host") == socket.gethostname():  # a process here is alive or not: no need to wait
        started = process_start(int(holder.get("pid", -1)))
        return started is None or started != holder.get("started")
    beat = datetime.datetime.fromisoformat(holder.get("heartbeat", "1970-01-01T00:00:00+00:00").replace("Z", "+00:00"))
    return ((at or now()) - beat).total_seconds() > STALE_AFTER_S


def describe(holder: dict) -> str:
    return (f"host {holder.get('host')} pid {holder.get('pid')} (output {holder.get('output')}, "
            f"since {holder.get('since')})")


def in_use(setting: str, folder: str, holder: dict) -> IndexLocked:
    return IndexLocked(f"{setting}: {folder} is in use by {describe(holder)}; wait for that run, or delete "
                       f"{storage.join(folder, LOCK)} if it is gone")


def create_if_absent(url: str, data: bytes) -> bool:
    """Write `data` to `url` unless it exists; whether this call created it."""
    if storage.is_local(url):
        # A hard link is created whole or fails if the name exists: no reader sees half a lock.
        os.makedirs(os.path.dirname(url), exist_ok=True)
        tmp = f"{url}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, url)
        except FileExistsError:
            return False
        finally:
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
        self.thread = threading.Thread(target=self._beat, name=f"index-lock {folder}", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                if not self.owned():
                    self.lost = True
                    return
                self.record["heartbeat"] = iso(now())
                write_bytes(json.dumps(self.record).encode(), storage.join(self.folder, LOCK))
            except OSError:  # the store is unreachable for now: try again at the next beat
                continue

    def owned(self) -> bool:
        current = read_holder(self.folder)
        return current is not None and current.get("token") == self.record["token"]


_HELD: dict[str, _Held] = {}


def acquire(folder: str, output: str, setting: str) -> None:
    """Hold `folder`'s lock for this process and `output` (re-entrant: the MinHash stages of one
    run take it one after another); raise IndexLocked, naming the holder, if another run has it."""
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
        if not is_stale(holder):
            raise in_use(setting, folder, holder)
        storage.rm(storage.join(folder, LOCK), recursive=False)
    raise IndexLocked(f"{setting}: could not take the lock on {folder} (other runs keep taking it); try again")


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
        raise IndexLocked(f"{setting}: lost the lock on {folder} to {describe(read_holder(folder) or {})} "
                          "before committing; nothing was committed: run again")


def release(folder: str) -> None:
    held = _HELD.pop(folder, None)
    if held is None:
        return
    held.stop.set()
    if held.owned():
        storage.rm(storage.join(folder, LOCK), recursive=False)


@atexit.register
def _release_all() -> None:
    """A run that ends (also by an exception) gives its locks back; SIGKILL leaves them stale."""
    for folder in list(_HELD):
        try:
            release(folder)
        except Exception:  # best effort at exit: a stale lock is taken over anyway
            pass
