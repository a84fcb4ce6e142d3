"""Ctrl-C and SIGTERM stop a run with one line: only the `thresher` process acts on them.

SIGTERM is what `kill`, `timeout` and batch schedulers send (Slurm sends it to every process of
a job step, then SIGKILL after its KillWait): `thresher` handles it like Ctrl-C
(`terminate_raises` turns it into `Terminated`, a `KeyboardInterrupt`, so every clean-up for
Ctrl-C runs for it too) and exits with status 143 and one line; the committed parts stay, and a
rerun resumes. The child processes start with SIGTERM blocked as well as SIGINT (below), so the
workers keep running until the client closes them; a worker the nanny closes is told through
its stop queue, and killed with SIGKILL if it does not stop.

A terminal sends SIGINT to its whole foreground process group: the client, every local Dask
worker process, every extraction sandbox, every training rank. Each would raise
`KeyboardInterrupt` and print its own traceback while the client shuts them down anyway. So
the child processes are started with SIGINT (and SIGTERM) *blocked*: a blocked signal mask, unlike a Python
handler, survives fork and exec, so a worker (and the sandboxes it starts, and a worker the
nanny restarts later from the same event-loop thread) never sees the signal, while the client
unblocks it once they are started and gets it as `KeyboardInterrupt`. A Ctrl-C pressed while
they start stays pending and arrives right after. The CLI turns it into one line and status 130.

    with stop_signals_blocked():
        cluster = LocalCluster(...)      # its loop thread and worker processes inherit the mask

Training ranks are started differently: torchrun's agent starts each rank in a session of its
own and forwards a SIGINT it gets to them, and every rank prints a traceback. `call_in_own_group`
runs torchrun in a session of its own too, which the terminal's Ctrl-C does not reach; `thresher`
gets the signal alone and kills the agent and the ranks (a rank killed mid-save leaves a `.tmp`
checkpoint, which a resumed run ignores).

    status = call_in_own_group(["python", "-m", "torch.distributed.run", ...])
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from multiprocessing import resource_tracker

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Terminated(KeyboardInterrupt):
    """SIGTERM came: stop as for Ctrl-C (the CLI exits with status 143 instead of 130)."""


def _raise_terminated(_signum: int, _frame) -> None:
    raise Terminated


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """Inside the block, SIGTERM raises `Terminated` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread (and so in the threads and processes it starts)
    inside the block; on leaving it, one that came meanwhile is raised (`KeyboardInterrupt`, or
    `Terminated` inside `terminate_raises`)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    # multiprocessing starts its resource tracker on the first spawn and then *unblocks* SIGINT
    # in the spawning thread (CPython 3.11 resource_tracker.ensure_running): start it first.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


POLL_SECONDS = 0.1


def call_in_own_group(command: list[str]) -> int:
    """`subprocess.call(command)` in a new session: Ctrl-C here kills its whole process group and
    is re-raised; SIGTERM or SIGHUP to this process kill the group too, then go to the handler
    they had before (`Terminated` under `terminate_raises`), else kill this process as before."""
    proc = subprocess.Popen(command, start_new_session=True)

    def stop(signum: int, frame) -> None:
        _kill_group(proc)
        if callable(handler := previous.get(signum)):  # e.g. `terminate_raises`: stop with one line
            handler(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)} if main else {}
    try:
        # Not proc.wait(): a SIGINT the kernel hands to another thread (torch's OpenMP pool, once
        # the config loaded torch) would leave this thread blocked in waitpid until the ranks end.
        while (status := proc.poll()) is None:
            time.sleep(POLL_SECONDS)
        return status
    except KeyboardInterrupt:
        _kill_group(proc)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`'s process group and every descendant's group: torchrun starts each rank in
    a session of its own (and would forward a gentler signal to them, each printing a traceback)."""
    import psutil  # a dependency of distributed

    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for pid in [proc.pid, *(d.pid for d in descendants)]:  # the agent first: it must not see its ranks die
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    proc.wait()
