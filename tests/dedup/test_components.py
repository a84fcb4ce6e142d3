"""Connected components: scipy in one process and label propagation on Dask give the same
labels (the smallest node of each component) as a plain union-find, on long chains too."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd

from dedup.components import connected_components, label_arrays


def union_find_labels(u: np.ndarray, v: np.ndarray) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(u.tolist(), v.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def random_graph(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random sparse edges between big node ids, plus a 40-node chain in shuffled order."""
    rng = np.random.default_rng(seed)
    nodes = (rng.integers(0, 50, 400) << 32) | rng.integers(0, 1000, 400)
    u, v = rng.choice(nodes, 150), rng.choice(nodes, 150)
    chain = np.sort(rng.choice(np.arange(10**6, 2 * 10**6), 40, replace=False))[rng.permutation(40)]
    u, v = np.concatenate([u, chain[:-1]]), np.concatenate([v, chain[1:]])
    keep = u != v
    return u[keep].astype(np.int64), v[keep].astype(np.int64)


def test_scipy_labels_are_the_smallest_node_of_each_component():
    u, v = random_graph(0)
    nodes, labels = label_arrays(u, v)
    assert dict(zip(nodes.tolist(), labels.tolist())) == union_find_labels(u, v)


def test_dask_label_propagation_equals_the_local_result(client):
    u, v = random_graph(1)
    edges = dd.from_pandas(pd.DataFrame({"u": u, "v": v}), npartitions=4)
    local = connected_components(client, edges, len(u), max_local_edges=len(u)).compute(scheduler=client)
    spread = connected_components(client, edges, len(u), max_local_edges=0).compute(scheduler=client)
    local = dict(zip(local["node"], local["label"]))
    assert dict(zip(spread["node"], spread["label"])) == local == union_find_labels(u, v)
