"""Progress of a map on the cluster, for a terminal and for a batch job's log file.

`map_all` runs a function over many items on the cluster with a bounded number of tasks in
flight and returns the results in item order; `wait_all` waits for a few futures and fetches
their results in one gather; `Progress` shows a tqdm bar when stderr is a terminal and otherwise
writes a plain line every `LOG_EVERY_SECONDS`; `log` writes one line to stderr; `largest_first`
orders a map's items costliest first.

    results = map_all(client, fn, [(part,) for part in parts], "03-extract", "part", progress=True)
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator

from dask.sizeof import sizeof
from tqdm import tqdm

POLL_SECONDS = 0.5  # how often a map's progress bar is brought up to date
# A map keeps at most this many tasks per worker thread in flight (and never fewer than
# MIN_WINDOW): each costs the client (and a LocalCluster's scheduler, in the same process)
# ~45-90 KB while it is known, so a map over 10^6 parts submitted at once would take tens of GB.
WINDOW_PER_THREAD = 8
MIN_WINDOW = 256
# Dask's `map` puts a keyword argument larger than this into the graph as a data task keyed by
# the keyword's *name*: two maps (or two windows of one) passing a large `parts=` collide on the
# key "parts" while the first is still held, and the scheduler fails the tasks with
# AssertionError(<TaskState 'parts' processing>). `shipped` scatters such values once instead.
DASK_INLINE_LIMIT = 100_000
LOG_EVERY_SECONDS = 60.0  # progress lines in a log file (stderr not a terminal)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def largest_first(cost: list[float]) -> list[int]:
    """Positions by descending cost (ties in order). Dask runs a map's tasks in submission
    order, so the last tasks are the shortest and no worker waits long at the end for
    another's big one (LPT scheduling)."""
    return sorted(range(len(cost)), key=lambda i: (-cost[i], i))


def shipped(client, kwargs: dict) -> dict:
    """`kwargs` for `client.map`, each value over Dask's inline limit scattered once under a
    unique key (a future the tasks receive as the value)."""
    return {k: client.scatter([v], hash=False)[0] if sizeof(v) > DASK_INLINE_LIMIT else v for k, v in kwargs.items()}


def window_size(client) -> int:
    """Tasks a map keeps in flight on this cluster."""
    return max(MIN_WINDOW, WINDOW_PER_THREAD * sum(client.nthreads().values()))


def map_all(client, fn, rows: list[tuple], desc: str, unit: str, progress: bool, window: int | None = None,
            **kwargs) -> list:
    """`fn(*row, **kwargs)` for every row on the cluster, results in row order. Rows are
    submitted in order, at most `window` (default `window_size`) in flight: the client tops
    the window up whenever half of it has finished (or every poll), so the scheduler
    always has work queued while the client's memory stays independent of the number of
    rows. Finished results are fetched in one gather per poll and their futures released; a
    task's exception is re-raised here within a poll."""
    window = window or window_size(client)
    kwargs = shipped(client, kwargs) if rows else kwargs
    results: list = [None] * len(rows)
    pending: dict = {}  # future -> row position, in submission order
    submitted = 0
    finished = Finished()
    with client.as_current(), Progress(len(rows), desc, unit, progress) as bar, finished.cancelling(client, pending):
        while submitted < len(rows) or pending:
            if submitted < len(rows) and len(pending) < window:
                chunk = rows[submitted:submitted + window - len(pending)]
                futures = client.map(fn, *zip(*chunk), pure=False, **kwargs)
                finished.watch(futures)
                pending.update(zip(futures, range(submitted, submitted + len(chunk))))
                submitted += len(chunk)
            finished.wait(submitted - len(pending) + max(1, len(pending) // 2), POLL_SECONDS)  # half of them
            done = [f for f in pending if f.status in ("finished", "error", "cancelled")]
            for future in done:
                if future.status in ("error", "cancelled"):
                    future.result()  # raises the task's exception
            for future, result in zip(done, client.gather(done)):
                results[pending.pop(future)] = result
            bar.update(len(done))
    return results


def wait_all(futures: list, desc: str, unit: str, progress: bool) -> list:
    """Results of `futures` in their order, with progress; a task's exception is re-raised
    here within a poll. The futures' states are polled every half second and the results
    fetched in one gather: waking this thread and asking for each result separately cost the
    client process ~2.5 ms of CPU per task, time taken from the workers when they are as many
    as the cores. Progress is a bar on a terminal and, in a log file, a line every
    `LOG_EVERY_SECONDS` (no carriage returns)."""
    if not futures:
        return []
    client = futures[0].client
    pending = list(futures)
    finished = Finished()
    finished.watch(futures)
    with client.as_current(), Progress(len(futures), desc, unit, progress) as bar, finished.cancelling(client, futures):
        while pending:
            finished.wait(len(futures), POLL_SECONDS)
            for future in pending:
                if future.status in ("error", "cancelled"):
                    future.result()  # raises the task's exception
            still = [f for f in pending if f.status != "finished"]
            bar.update(len(pending) - len(still))
            pending = still
    return client.gather(futures)


class Finished:
    """Wakes a polling loop when enough of the futures it watches have finished (or erred, or
    were cancelled). Each future gets one done-callback when it is submitted. Polling with
    `distributed.wait(futures, timeout=...)` instead left one waiting coroutine per future
    behind at every timeout, alive until that future finished: ~1 KB per future per poll, ~317
    MiB of the `bench/scale.py` client at 4x10^6 documents (stages of 160-256 long tasks)."""

    def __init__(self):
        self.count = 0
        self.changed = threading.Condition()

    def watch(self, futures: list) -> None:
        for future in futures:
            future.add_done_callback(self._done)

    def _done(self, _future) -> None:  # in Dask's callback thread
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    @contextlib.contextmanager
    def cancelling(self, client, futures) -> Iterator[None]:
        """Cancel `futures` (those still in it) when the block raises: their done-callbacks hold
        them, so merely dropping them would no longer release their tasks."""
        try:
            yield
        except BaseException:
            if futures:
                with contextlib.suppress(Exception):
                    client.cancel(list(futures))
            raise

    def wait(self, n: int, timeout: float) -> None:
        """Until `n` of the watched futures have finished in all, or `timeout` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.count >= n, timeout)


class Progress:
    """A tqdm bar when stderr is a terminal; otherwise a plain line every `LOG_EVERY_SECONDS`
    while work remains, so a batch job's log gets no carriage-return floods."""

    def __init__(self, total: int, desc: str, unit: str, enabled: bool):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.start = self.last_line = time.monotonic()
        terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr) if terminal else None
        self.lines = enabled and not terminal

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.monotonic()
        if self.lines and self.done < self.total and now - self.last_line >= LOG_EVERY_SECONDS:
            self.last_line = now
            log(f"[{self.desc}] {self.done}/{self.total} {self.unit}s done, {now - self.start:.0f}s")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
