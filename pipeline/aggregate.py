"""Per-part summaries merged in a tree on the workers, so the client receives one small result.

A global stage that needs whole-dataset numbers (tokens per domain, a histogram for an exact
cut) maps a summary function over its parts and merges the summaries `FANIN` at a time on the
workers until one is left; only that one travels to the client. The client then holds one
future per part while the map runs (a few KB each, in the client and the scheduler), never the
parts' summaries side by side. `combine(*summaries)` gets its arguments in part order, so an
order-preserving merge (first appearance of a key) stays deterministic.

    totals = map_reduce(ctx, count_tokens, paths, add_counts, "count")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.progress import largest_first, wait_all

FANIN = 16


def map_reduce(ctx, fn: Callable, items: list, combine: Callable, desc: str,
               cost: list[float] | None = None, **kwargs: Any) -> Any:
    """`combine` of `fn(item, **kwargs)` over all `items` (None when there are none); the
    costliest items are submitted first when `cost` is given."""
    if not items:
        return None
    order = largest_first(cost) if cost is not None else list(range(len(items)))
    submitted = ctx.client.map(fn, [items[i] for i in order], pure=False, **kwargs)
    level: list = [None] * len(items)
    for i, future in zip(order, submitted):
        level[i] = future
    while len(level) > 1:
        level = [ctx.client.submit(combine, *level[i:i + FANIN], pure=False) for i in range(0, len(level), FANIN)]
    return wait_all(level, f"{ctx.name}:{desc}", "result", ctx.progress)[0]
