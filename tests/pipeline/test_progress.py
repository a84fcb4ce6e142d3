"""Bounded maps: `map_all` keeps at most a window of tasks in flight and returns results in row
order; `map_reduce` merges windows of parts to the same result as one tree over all parts."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest
from distributed import get_client

from pipeline import aggregate, progress
from pipeline.aggregate import map_reduce
from pipeline.progress import map_all, window_size


def _known_to_scheduler(prefix: str, dask_scheduler=None) -> int:
    return sum(1 for key in dask_scheduler.tasks if str(key).startswith(prefix))


def _slow_square(x: int, pause: float) -> tuple[int, int]:
    time.sleep(pause * (x % 3))
    return x * x, get_client().run_on_scheduler(_known_to_scheduler, "_slow_square")


def _fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def test_map_all_returns_rows_in_order_with_a_bounded_window(client):
    rows = [(x,) for x in range(40)]
    results = map_all(client, _slow_square, rows, "test", "task", False, window=4, pause=0.01)
    assert [r[0] for r in results] == [x * x for x in range(40)]
    # The scheduler never held more than the window's tasks, give or take the finished ones
    # whose release is still on its way (all 40 at once without the window).
    assert max(r[1] for r in results) <= 2 * 4


def test_map_all_takes_several_arguments_and_reraises_a_task_error(client):
    assert map_all(client, pow, [(2, 3), (3, 2)], "test", "task", False) == [8, 9]
    with pytest.raises(ValueError, match="bad item 7"):
        map_all(client, _fail_on, [(x,) for x in range(12)], "test", "task", False, window=3, bad=7)
    assert map_all(client, _fail_on, [], "test", "task", False, bad=0) == []


def _nap(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


async def _coroutines() -> int:
    return len(asyncio.all_tasks())


@pytest.mark.parametrize("wait", ["map_all", "wait_all"])
def test_polling_leaves_no_coroutines_behind(client, monkeypatch, wait):
    """Each poll of a long task used to leave a waiting coroutine per pending future on the
    client's loop until the task finished: ~1 KB per future per poll, hundreds of MB over a long
    stage. Polling 100 times a second over 4 two-second tasks must not pile them up."""
    monkeypatch.setattr(progress, "POLL_SECONDS", 0.01)
    before, most, running = client.sync(_coroutines), [0], threading.Event()

    def sample() -> None:
        while not running.wait(0.05):
            most[0] = max(most[0], client.sync(_coroutines))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        if wait == "map_all":
            assert map_all(client, _nap, [(x,) for x in range(4)], "test", "task", False, seconds=2.0) == [0, 1, 2, 3]
        else:
            futures = client.map(_nap, range(4), seconds=2.0, pure=False)
            assert progress.wait_all(futures, "test", "task", False) == [0, 1, 2, 3]
    finally:
        running.set()
        sampler.join()
    assert most[0] - before < 40, (before, most[0])


def _fail_or_nap(x: int, bad: int, seconds: float) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    time.sleep(seconds)
    return x


def test_a_task_error_releases_the_tasks_still_in_flight(client):
    with pytest.raises(ValueError, match="bad item 0"):
        map_all(client, _fail_or_nap, [(x,) for x in range(4)], "test", "task", False, bad=0, seconds=3.0)
    deadline = time.monotonic() + 2.0  # well before the naps end: cancelled, not waited for
    while client.run_on_scheduler(_known_to_scheduler, "_fail_or_nap") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.run_on_scheduler(_known_to_scheduler, "_fail_or_nap") == 0


def test_window_grows_with_the_cluster_threads(client):
    assert window_size(client) >= 256


def _summary(x: int) -> dict:
    return {"keys": {f"k{x % 5}": x}, "order": [x]}


def _combine(*summaries: dict) -> dict:
    out: dict = {"keys": {}, "order": []}
    for s in summaries:
        for k, v in s["keys"].items():
            out["keys"][k] = out["keys"].get(k, 0) + v
        out["order"] += s["order"]
    return out


@pytest.mark.parametrize("window", [3, 16, 1000])
def test_map_reduce_gives_one_tree_result_for_any_window(client, monkeypatch, window):
    monkeypatch.setattr(aggregate, "window_size", lambda c: window)
    ctx = SimpleNamespace(client=client, name="test", progress=False)
    items = list(range(50))
    cost = [(x * 7) % 11 for x in items]
    merged = map_reduce(ctx, _summary, items, _combine, "count", cost=cost)
    assert merged["order"] == items  # part order, whatever the window and the submission order
    assert list(merged["keys"]) == ["k0", "k1", "k2", "k3", "k4"]
    assert merged["keys"]["k0"] == sum(x for x in items if x % 5 == 0)
    assert map_reduce(ctx, _summary, [], _combine, "count") is None


def _count(x: int, big: list) -> int:
    return x + len(big)


def test_a_large_keyword_argument_is_shipped_once_for_every_window(client, monkeypatch):
    """Dask's map keys a keyword argument over 100 kB by the keyword's name; without `shipped`
    the second window's "big" collides with the first's in the scheduler."""
    big = list(range(50_000))
    assert map_all(client, _count, [(x,) for x in range(9)], "test", "task", False, window=2, big=big) == \
        [x + 50_000 for x in range(9)]
    monkeypatch.setattr(aggregate, "window_size", lambda c: 2)
    ctx = SimpleNamespace(client=client, name="test", progress=False)
    assert map_reduce(ctx, _count, list(range(9)), _sum, "count", big=big) == sum(range(9)) + 9 * 50_000


def _sum(*values: int) -> int:
    return sum(values)
