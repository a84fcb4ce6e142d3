"""Ctrl-C stops a run with one line: only the `thresher` process acts on it.

A terminal sends SIGINT to its whole foreground process group: the client, every local Dask
worker process, every extraction sandbox, every training rank. Each would raise
`KeyboardInterrupt` and print its own traceback while the client shuts them down anyway. So
the child processes are started with SIGINT *blocked*: a blocked signal mask, unlike a Python
handler, survives fork and exec, so a worker (and the sandboxes it starts, and a worker the
nanny restarts later from the same event-loop thread) never sees the signal, while the client
unblocks it once they are started and gets it as `KeyboardInterrupt`. A Ctrl-C pressed while
they start stays pending and arrives right after. The CLI turns it into one line and status 130.

    with sigint_blocked():
        cluster = LocalCluster(...)      # its loop thread and worker processes inherit the mask
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from multiprocessing import resource_tracker


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread (and so in the threads and processes it starts) inside the
    block; on leaving it, a SIGINT that came meanwhile is raised as `KeyboardInterrupt`."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    # multiprocessing starts its resource tracker on the first spawn and then *unblocks* SIGINT
    # in the spawning thread (CPython 3.11 resource_tracker.ensure_running): start it first.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
