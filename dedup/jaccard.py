"""True Jaccard similarity of candidate pairs, from the documents' texts.

Used to verify candidate edges (drop LSH false positives) and to estimate the false-positive
rate from a sample of candidate pairs. A document's shingles are rebuilt from its text with
the same normalisation and n-grams as its signature and compared as sets of 32-bit shingle
hashes (two distinct shingles of ~10^3 share a hash with probability ~10^-4).

    kept = verify_edges(client, edges, parts, docs_dir, params, threshold=0.7)
"""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa

from dedup.lsh import EDGE_META, signature_matrix
from dedup.minhash import MinHashParams, hash_sets, jaccard, splitmix64
from pipeline import storage
from pipeline.aggregate import shuffle_method
from pipeline.parts import read_part

SET_META = pd.DataFrame({"node": pd.Series([], dtype="int64"), "hashes": pd.Series([], dtype=object)})
PAIR_META = pd.DataFrame({"u": pd.Series([], dtype="int64"), "v": pd.Series([], dtype="int64"),
                          "jaccard": pd.Series([], dtype="float64")})


def part_hash_sets(path: str, rows: np.ndarray, params: MinHashParams) -> list[np.ndarray]:
    """Shingle-hash sets of the given rows of one document part."""
    table = read_part(path, columns=["text"]).take(pa.array(rows))
    return hash_sets(table["text"], params)


def hash_set_frame(df: pd.DataFrame, parts: tuple[str, ...], docs_dir: str, params: MinHashParams) -> pd.DataFrame:
    """(node, hash-set bytes) for the distinct nodes in `df` (columns node, part)."""
    out = []
    for part_index, group in df.groupby("part", sort=True):
        nodes = np.unique(group["node"].to_numpy())
        sets = part_hash_sets(storage.join(docs_dir, parts[int(part_index)]), nodes & 0xFFFFFFFF, params)
        out.append(pd.DataFrame({"node": nodes, "hashes": [s.tobytes() for s in sets]}))
    return pd.concat(out, ignore_index=True) if out else SET_META.copy()


def pair_jaccard(df: pd.DataFrame) -> pd.DataFrame:
    values = [jaccard(np.frombuffer(a, np.uint32), np.frombuffer(b, np.uint32)) for a, b in zip(df["hu"], df["hv"])]
    return pd.DataFrame({"u": df["u"].to_numpy(), "v": df["v"].to_numpy(),
                         "jaccard": np.asarray(values, dtype="float64")})


def edge_jaccard(edges: dd.DataFrame, parts: tuple[str, ...], docs_dir: str, params: MinHashParams,
                 npartitions: int) -> dd.DataFrame:
    """`edges` with the true Jaccard of each pair (a Dask DataFrame u, v, jaccard)."""
    nodes = dd.concat([edges[["u"]].rename(columns={"u": "node"}), edges[["v"]].rename(columns={"v": "node"})])
    nodes = nodes.assign(part=nodes["node"] // (1 << 32))
    method = shuffle_method(npartitions)
    # Grouped by part, each document part is read once; the sets then join both ends of each edge.
    sets = nodes.shuffle(on="part", npartitions=npartitions, shuffle_method=method)
    sets = sets.map_partitions(hash_set_frame, parts, str(docs_dir), params, meta=SET_META)
    pairs = edges.merge(sets.rename(columns={"node": "u", "hashes": "hu"}), on="u", npartitions=npartitions,
                        shuffle_method=method)
    pairs = pairs.merge(sets.rename(columns={"node": "v", "hashes": "hv"}), on="v", npartitions=npartitions,
                        shuffle_method=method)
    return pairs.map_partitions(pair_jaccard, meta=PAIR_META)


def verify_edges(edges: dd.DataFrame, parts: tuple[str, ...], docs_dir: str, params: MinHashParams,
                 threshold: float, npartitions: int) -> dd.DataFrame:
    """Only the edges whose true Jaccard is at least `threshold`."""
    scored = edge_jaccard(edges, parts, docs_dir, params, npartitions)
    return scored[scored["jaccard"] >= threshold][["u", "v"]].astype(EDGE_META.dtypes.to_dict())


# -- a deterministic sample of candidate pairs, for the audit ------------------------------

def _smallest_scores(df: pd.DataFrame, k: int) -> pd.DataFrame:
    score = splitmix64(df["u"].to_numpy().astype(np.uint64) ^ splitmix64(df["v"].to_numpy().astype(np.uint64)))
    out = df.assign(score=score.view(np.int64) & np.int64(0x7FFFFFFFFFFFFFFF))
    return out.nsmallest(k, "score")


def sample_edges(client, edges: dd.DataFrame, k: int) -> pd.DataFrame:
    """k candidate pairs chosen by a hash of (u, v): the same sample on every run."""
    meta = EDGE_META.assign(score=pd.Series([], dtype="int64"))
    smallest = client.compute(edges.map_partitions(_smallest_scores, k, meta=meta)).result()
    return smallest.sort_values(["score", "u", "v"]).head(k)[["u", "v"]].reset_index(drop=True)


def sample_part(part_index: int, nodes: np.ndarray, docs_dir: str, signature_dir: str,
                parts: tuple[str, ...], params: MinHashParams) -> dict[int, tuple]:
    """node -> (hash set, signature, id) for some rows of one part (runs on a worker)."""
    rows = nodes & 0xFFFFFFFF
    sets = part_hash_sets(storage.join(docs_dir, parts[part_index]), rows, params)
    table = storage.read_table(storage.join(signature_dir, parts[part_index]), columns=["id", "signature"])
    table = table.take(pa.array(rows))
    signatures = signature_matrix(table)
    return {int(n): (s, sig, i) for n, s, sig, i in zip(nodes, sets, signatures, table["id"].to_pylist())}


def sample_similarities(ctx, sample: pd.DataFrame, docs_dir: str, signature_dir: str,
                        params: MinHashParams) -> pd.DataFrame:
    """The sample's ids, true Jaccard and MinHash estimate (fraction of equal signature values)."""
    nodes = np.unique(np.concatenate([sample["u"].to_numpy(), sample["v"].to_numpy()]))
    by_part = pd.Series(nodes).groupby(nodes >> 32)
    items = [(int(p), group.to_numpy()) for p, group in by_part]
    found: dict[int, tuple] = {}
    for result in ctx.map(_sample_item, items, "audit sample", docs_dir=str(docs_dir),
                          signature_dir=str(signature_dir), parts=ctx.input.parts, params=params):
        found.update(result)
    rows = []
    for u, v in zip(sample["u"], sample["v"]):
        (set_u, sig_u, id_u), (set_v, sig_v, id_v) = found[int(u)], found[int(v)]
        rows.append((id_u, id_v, jaccard(set_u, set_v), float(np.mean(sig_u == sig_v))))
    columns = ["id_u", "id_v", "jaccard", "estimate"]
    return pd.concat([sample, pd.DataFrame(rows, columns=columns)], axis=1)


def _sample_item(item, docs_dir, signature_dir, parts, params):
    part_index, nodes = item
    return sample_part(part_index, nodes, docs_dir, signature_dir, parts, params)
