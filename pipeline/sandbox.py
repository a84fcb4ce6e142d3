"""Run a function in a child process with a time limit on every call.

Main-text extraction can run for minutes on a pathological page (trafilatura #704) and a C
library can crash a process; neither may stop a run. A `Sandbox` keeps one child process
(`python -m pipeline.sandbox module:function`) per worker and talks to it over pipes with
length-prefixed pickles. A call that uses more than its limit of CPU time kills the child
(the next call starts a fresh one) and raises `SandboxTimeout`; a child that dies raises `SandboxCrashed`. A child
reports "ready" once its module (and the module's optional `sandbox_init()`) is imported, so
start-up time never counts against a call's limit.
Plain `subprocess` is used rather than `multiprocessing` because Dask worker processes are
daemonic, and daemonic processes may not start `multiprocessing` children.

    box = get_sandbox("pipeline.extract:extract_page")
    result = box.call(payload, timeout=10.0)
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from typing import Any

_HEADER = struct.Struct("<Q")
POLL_SECONDS = 0.05
WALL_FACTOR = 10
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` (Linux /proc), or None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of stat


class SandboxTimeout(Exception):
    pass


class SandboxCrashed(Exception):
    pass


def _write_frame(out, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("sandbox pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> Any:
    (length,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return pickle.loads(_read_exact(fd, length))


class Sandbox:
    def __init__(self, target: str):
        self.target = target
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        """Start the child and wait until it has imported its libraries, so that start-up
        time never counts against a call's limit."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.sandbox", self.target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env,
        )
        try:
            status, detail = _read_frame(proc.stdout.fileno())
        except (EOFError, pickle.UnpicklingError):
            status, detail = "error", f"exited with code {proc.wait()}"
        if status != "ready":
            proc.kill()
            raise RuntimeError(f"sandbox for {self.target} failed to start: {detail}")
        return proc

    def call(self, payload: Any, timeout: float) -> Any:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        try:
            _write_frame(self.proc.stdin, payload)
        except (BrokenPipeError, OSError):
            self.close()
            raise SandboxCrashed("sandbox process died before the call") from None
        self._wait_for_reply(timeout)
        fd = self.proc.stdout.fileno()
        try:
            status, value = _read_frame(fd)
        except (EOFError, pickle.UnpicklingError):
            code = self.proc.wait()
            self.proc = None
            raise SandboxCrashed(f"sandbox process exited with code {code}") from None
        if status == "error":
            raise RuntimeError(value)
        return value

    def _wait_for_reply(self, timeout: float) -> None:
        """Wait until the child answers or has used `timeout` seconds of CPU on this call.
        CPU time, not wall time, decides: on a loaded machine a page gets the same budget as
        on an idle one, so the same pages time out on every run. A wall-clock backstop of
        `WALL_FACTOR` x `timeout` catches a child that hangs without computing."""
        fd = self.proc.stdout.fileno()
        cpu_start, wall_start = _cpu_seconds(self.proc.pid), time.monotonic()
        while not select.select([fd], [], [], min(POLL_SECONDS, timeout))[0]:
            cpu = _cpu_seconds(self.proc.pid)
            used = cpu - cpu_start if cpu is not None and cpu_start is not None else time.monotonic() - wall_start
            if used >= timeout or time.monotonic() - wall_start >= WALL_FACTOR * timeout:
                self.close()
                raise SandboxTimeout(f"no result within {timeout:g}s")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


_SANDBOXES: dict[str, Sandbox] = {}


def get_sandbox(target: str) -> Sandbox:
    """The calling process's sandbox for `target` (started lazily, once per process)."""
    if target not in _SANDBOXES:
        _SANDBOXES[target] = Sandbox(target)
    return _SANDBOXES[target]


@atexit.register
def _close_all() -> None:
    for box in _SANDBOXES.values():
        box.close()


def main(target: str) -> None:
    # Ctrl-C is the run's to handle: this child ends when its worker closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; anything the library prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, name)
        if init := getattr(module, "sandbox_init", None):  # heavy imports, before any deadline
            init()
    except Exception as error:
        _write_frame(out, ("error", f"{type(error).__name__}: {error}"))
        return
    _write_frame(out, ("ready", None))
    fd = sys.stdin.fileno()
    while True:
        try:
            payload = _read_frame(fd)
        except EOFError:  # the parent closed the pipe or died: nothing left to do
            return
        try:
            reply = ("ok", fn(payload))
        except Exception as error:  # reported to the parent, which decides what to do
            reply = ("error", f"{type(error).__name__}: {error}")
        try:
            _write_frame(out, reply)
        except BrokenPipeError:  # the worker went away meanwhile (a run stopped): nobody to answer
            return


if __name__ == "__main__":
    main(sys.argv[1])
