"""Connected components of the candidate graph: each node's label is the smallest node of its
component, so the result does not depend on how the edges are partitioned or processed.

Two ways to the same labels:
- `local_components`: when the edges fit (`max_local_edges`), gather them in one worker and run
  scipy's connected components there (fast, one process; never in the client);
- `dask_components`: otherwise, iterative min-label propagation with pointer jumping over
  Dask DataFrames — each round every node takes the smallest label among itself and its
  neighbours, then the label of its label — so no process ever holds all edges. Edges (keyed
  by neighbour) and labels (keyed by node) are hash-partitioned alike, so a round joins them
  partition by partition and needs three shuffles of labels only. Labels only decrease, so a
  round that leaves their sum unchanged has converged; pointer jumping makes the number of
  rounds grow with the log of the component diameter.

    labels = connected_components(client, edges, n_edges, max_local_edges=20_000_000)
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.aggregate import n_partitions, persisted, shuffle_method

LABEL_META = pd.DataFrame({"node": pd.Series([], dtype="int64"), "label": pd.Series([], dtype="int64")})
MAX_ROUNDS = 200


def label_arrays(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, labels) of the graph with edges u-v, nodes sorted."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, inverse = np.unique(np.concatenate([u, v]), return_inverse=True)
    m = len(u)
    graph = coo_matrix((np.ones(m, dtype=np.int8), (inverse[:m], inverse[m:])), shape=(len(nodes), len(nodes)))
    _, component = connected_components(graph, directed=False)
    # Nodes are sorted, so a component's first occurrence is its smallest node.
    _, first = np.unique(component, return_index=True)
    smallest = np.empty(len(first), dtype=np.int64)
    smallest[component[first]] = nodes[first]
    return nodes, smallest[component]


def _label_frame(*frames: pd.DataFrame) -> pd.DataFrame:
    """(node, label) of the graph of all the edge `frames`; runs on a worker."""
    edges = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"u": [], "v": []}, dtype="int64")
    nodes, labels = label_arrays(edges["u"].to_numpy(), edges["v"].to_numpy())
    return pd.DataFrame({"node": nodes, "label": labels})


def _slice(frame: pd.DataFrame, i: int, n: int) -> pd.DataFrame:
    size = -(-len(frame) // n)
    return frame.iloc[i * size:(i + 1) * size].reset_index(drop=True)


def local_components(client, edges: dd.DataFrame, n_edges: int) -> dd.DataFrame:
    """Components in one worker process: its edges are gathered there, not in the client."""
    whole = dask.delayed(_label_frame)(*edges.to_delayed())
    n = n_partitions(2 * n_edges)  # at most this many rows' worth of nodes
    return persisted(client, dd.from_delayed([dask.delayed(_slice)(whole, i, n) for i in range(n)], meta=LABEL_META,
                                          verify_meta=False))


def _initial(by_a: pd.DataFrame) -> pd.DataFrame:
    """Each node's label: the smaller of itself and its smallest neighbour."""
    smallest = by_a.groupby("a", sort=True)["b"].min()
    return pd.DataFrame({"node": smallest.index.to_numpy(),
                         "label": np.minimum(smallest.index.to_numpy(), smallest.to_numpy())}).astype("int64")


def _offers(by_b: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Every node `a` is offered the label of each neighbour `b` (partitions aligned on b/node)."""
    joined = by_b.merge(labels.rename(columns={"node": "b"}), on="b", how="inner")
    return joined[["a", "label"]].rename(columns={"a": "node"})


def _answers(asks: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """For each (node, label) ask, the label's own label (partitions aligned on label/node)."""
    own = labels.rename(columns={"node": "label", "label": "jump"})
    joined = asks.merge(own, on="label", how="inner")
    return joined[["node", "jump"]].rename(columns={"jump": "label"})


def _lower(labels: pd.DataFrame, offers: pd.DataFrame) -> pd.DataFrame:
    """Each node's smallest label among its own and the offers (aligned on node)."""
    best = pd.concat([labels, offers]).groupby("node", sort=True)["label"].min()
    return pd.DataFrame({"node": best.index.to_numpy(), "label": best.to_numpy()}).astype("int64")


def _zip(fn, left: dd.DataFrame, right: dd.DataFrame, meta: pd.DataFrame) -> dd.DataFrame:
    """`fn` on partition i of both frames: both were shuffled on the same key values into the
    same number of partitions, so partition i holds the same keys in each."""
    return dd.map_partitions(fn, left, right, align_dataframes=False, meta=meta)


def _label_sum(client, labels: dd.DataFrame) -> int:
    sums = client.compute(labels["label"].map_partitions(lambda s: pd.Series([int(s.sum())]), meta=(None, "int64")))
    return sum(int(x) for x in sums.result())


def dask_components(client, edges: dd.DataFrame, n_edges: int) -> dd.DataFrame:
    n = n_partitions(2 * n_edges)
    method = shuffle_method(n)
    directed = dd.concat([edges.rename(columns={"u": "a", "v": "b"}), edges.rename(columns={"u": "b", "v": "a"})])
    by_a = directed.shuffle(on="a", npartitions=n, shuffle_method=method)
    by_b = persisted(client, directed.shuffle(on="b", npartitions=n, shuffle_method=method))
    labels = persisted(client, by_a.map_partitions(_initial, meta=LABEL_META))
    total = _label_sum(client, labels)
    for _ in range(MAX_ROUNDS):
        # Propagation: take the smallest label among the neighbours'.
        offers = _zip(_offers, by_b, labels, LABEL_META).shuffle(on="node", npartitions=n, shuffle_method=method)
        lowered = _zip(_lower, labels, offers, LABEL_META)
        # Pointer jumping: take the label of the label.
        asks = lowered.shuffle(on="label", npartitions=n, shuffle_method=method)
        answers = _zip(_answers, asks, lowered, LABEL_META).shuffle(on="node", npartitions=n, shuffle_method=method)
        labels = persisted(client, _zip(_lower, lowered, answers, LABEL_META))
        new_total = _label_sum(client, labels)
        if new_total == total:
            return labels
        total = new_total
    raise RuntimeError(f"label propagation did not converge in {MAX_ROUNDS} rounds")


def connected_components(client, edges: dd.DataFrame, n_edges: int, max_local_edges: int) -> dd.DataFrame:
    """(node, label) for every node that has an edge; label = smallest node of its component."""
    if n_edges <= max_local_edges:
        return local_components(client, edges, n_edges)
    return dask_components(client, edges, n_edges)
