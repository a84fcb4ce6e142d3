"""Per-part summaries merged in a tree on the workers, so the client receives one small result.

A global stage that needs whole-dataset numbers (tokens per domain, a histogram for an exact
cut) maps a summary function over its parts and merges the summaries `FANIN` at a time on the
workers until one is left; only that one travels to the client. The parts go in windows of
consecutive parts (`window_size`, at most two windows in flight), each merged to one future, so
the client holds a bounded number of futures (a few KB each, in the client and the scheduler)
whatever the number of parts, and never the parts' summaries side by side. `combine` must be
associative and gets its arguments in part order, so an order-preserving merge (first
appearance of a key) stays deterministic and does not depend on the window.

    totals = map_reduce(ctx, count_tokens, paths, add_counts, "count")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distributed import wait

from pipeline.progress import Progress, largest_first, shipped, wait_all, window_size

FANIN = 16
ROWS_PER_PARTITION = 500_000  # rows of a Dask DataFrame partition in the global stages' shuffles
# Up to this many output partitions (~2M rows) the in-memory task shuffle is cheapest; above,
# Dask's disk-backed p2p shuffle keeps worker memory bounded as the data grows.
MAX_TASK_SHUFFLE_PARTITIONS = 4


def map_reduce(ctx, fn: Callable, items: list, combine: Callable, desc: str,
               cost: list[float] | None = None, **kwargs: Any) -> Any:
    """`combine` of `fn(item, **kwargs)` over all `items` (None when there are none); within a
    window the costliest items are submitted first when `cost` is given."""
    if not items:
        return None
    client, window = ctx.client, window_size(ctx.client)
    kwargs = shipped(client, kwargs)
    roots: list = []
    with client.as_current(), Progress(len(items), f"{ctx.name}:{desc}", "part", ctx.progress) as bar:
        for start in range(0, len(items), window):
            span = range(start, min(start + window, len(items)))
            if len(roots) >= 2:  # at most two windows in flight
                wait(roots[-2])
                bar.update(window)
            roots.append(_merged(client, fn, [items[i] for i in span],
                                 None if cost is None else [cost[i] for i in span], combine, kwargs))
        root = _tree(client, roots, combine)
        wait(root)
        bar.update(len(items) - bar.done)
    return wait_all([root], f"{ctx.name}:{desc}", "result", False)[0]


def _merged(client, fn: Callable, items: list, cost: list[float] | None, combine: Callable, kwargs: dict):
    """One future: the items' summaries merged in item order; submitted costliest first."""
    order = largest_first(cost) if cost is not None else list(range(len(items)))
    level: list = [None] * len(items)
    for i, future in zip(order, client.map(fn, [items[i] for i in order], pure=False, **kwargs)):
        level[i] = future
    return _tree(client, level, combine)


def _tree(client, level: list, combine: Callable):
    while len(level) > 1:
        level = [client.submit(combine, *level[i:i + FANIN], pure=False) for i in range(0, len(level), FANIN)]
    return level[0]


def persisted(client, collection: Any) -> Any:
    """`client.persist(collection)`, returned once computed. On Python 3.11 every instance of a
    class shares each `functools.cached_property` lock, and a LocalCluster's scheduler builds a
    persisted graph in a thread of the client's process: the client building the next
    expression from the same one (its `divisions`) while the scheduler builds the last can take
    those locks in opposite orders and deadlock (seen in `duplicate_clusters`' decide step; no
    such lock from Python 3.12). Waiting here leaves the scheduler done with the graph first."""
    out = client.persist(collection)
    with client.as_current():
        wait(out)
    return out


def n_partitions(rows: int) -> int:
    return max(1, -(-rows // ROWS_PER_PARTITION))


def shuffle_method(npartitions: int) -> str:
    return "tasks" if npartitions <= MAX_TASK_SHUFFLE_PARTITIONS else "p2p"
