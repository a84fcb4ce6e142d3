"""The MinHash stages against an index (dedup/index.py): what each of the four stages adds.

- `lsh_buckets`: the entries' stored band keys join this run's in the same shuffle on `key`, as
  extra rows with negative nodes; a bucket yields edges from this run's documents only (an
  indexed document is never linked to another indexed one: earlier runs dealt with those).
- `duplicate_clusters`: components label by their smallest node, an indexed one where present,
  and an indexed document always ranks first, so every document of this run in a component with
  an indexed one is removed as its duplicate. With `verify_threshold`, a pair with an indexed
  document is verified by the fraction of equal signature values (its text is not re-read: the
  MinHash estimate of the Jaccard similarity, standard error ~0.04 at 0.8 with 112 permutations),
  a pair inside this run by the true Jaccard similarity as before.
- `remove_duplicates`: after applying the removals, writes the signatures and band keys of the
  documents it kept (those with shingles) as index entries, one file per input part, and commits them.

The snapshot a run reads is fixed by `lsh_buckets` (the first `index_commits` commits less this
run's own, in the MinHash block), so the later stages address the same index parts by number.
"""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa

from dedup.decide import GROUP_META
from dedup.index import DedupIndex, index_nodes, index_position, snapshot_at
from dedup.lsh import KEY_META, signature_matrix
from dedup.minhash import MinHashParams, band_keys
from pipeline import storage
from pipeline.aggregate import shuffle_method
from pipeline.io import write_parquet

DOCINFO_META = GROUP_META.drop(columns=["group"])
NODE_META = pd.DataFrame({"node": pd.Series([], dtype="int64"), "ipart": pd.Series([], dtype="int64")})
SIG_META = pd.DataFrame({"node": pd.Series([], dtype="int64"), "signature": pd.Series([], dtype=object)})


def settings(params: MinHashParams) -> dict:
    """What the entries depend on: an index built otherwise is refused."""
    bands, rows = params.lsh_shape()
    kept = params.model_dump(mode="json", include={"ngram", "shingle", "num_perm", "seed", "scheme", "normalization"})
    return {**kept, "bands": bands, "rows": rows}


def minhash_index(params: MinHashParams) -> DedupIndex | None:
    if params.index is None:
        return None
    return DedupIndex(params.index, "minhash", settings(params), "minhash_signatures.index")


# -- lsh_buckets ------------------------------------------------------------------------------

def band_frame(batch: list[tuple[int, str]], bands: int) -> pd.DataFrame:
    """(key, node) for every band of every entry in some index parts (on a worker)."""
    frames = []
    for ipart, path in batch:
        column = storage.read_table(path, columns=["keys"])["keys"].combine_chunks()
        keys = column.values.to_numpy().reshape(len(column), bands)
        nodes = np.repeat(index_nodes(ipart, len(column)), bands)
        frames.append(pd.DataFrame({"key": keys.reshape(-1).astype(np.int64), "node": nodes}))
    return pd.concat(frames, ignore_index=True) if frames else KEY_META.copy()


# -- duplicate_clusters -----------------------------------------------------------------------

def _with_index_part(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(ipart=index_position(df["node"].to_numpy())[0])


def snapshot_of(block: dict) -> tuple[str, int, str] | None:
    """Where the later MinHash stages find the index `lsh_buckets` read: (folder, commits, the
    output folder left out), the arguments of `snapshot_at`; None without an index."""
    if not block.get("index_commits"):
        return None
    return block["index_folder"], block["index_commits"], block["index_without"]


def _index_rows(df: pd.DataFrame, snap: tuple[str, int, str], column: str):
    """Yield (nodes, values of `column` at their rows) per index part present in `df`."""
    for ipart, group in df.groupby("ipart", sort=True):
        nodes = np.unique(group["node"].to_numpy())
        rows = index_position(nodes)[1]
        path = snapshot_at(*snap).path(int(ipart))
        yield nodes, storage.read_table(path, columns=[column]).take(pa.array(rows))[column]


def index_docinfo_part(df: pd.DataFrame, snap: tuple[str, int, str]) -> pd.DataFrame:
    """DOCINFO rows (node, id; no ranking values) of the index nodes in `df`."""
    frames = []
    for nodes, ids in _index_rows(df, snap, "id"):
        n = len(nodes)
        frames.append(pd.DataFrame({"node": nodes, "id": ids.to_pylist(), "quality_score": np.full(n, np.nan),
                                    "length": np.zeros(n, np.int64), "source": [None] * n, "domain": [None] * n}))
    out = pd.concat(frames, ignore_index=True) if frames else DOCINFO_META.copy()
    return out.astype(DOCINFO_META.dtypes.to_dict())


def index_docinfo(labels: dd.DataFrame, snap: tuple[str, int, str], npartitions: int) -> dd.DataFrame:
    """The indexed documents among the labelled nodes, like the run's docinfo."""
    nodes = labels[labels["node"] < 0][["node"]]
    nodes = nodes.map_partitions(_with_index_part, meta=NODE_META)
    nodes = nodes.shuffle(on="ipart", npartitions=npartitions, shuffle_method=shuffle_method(npartitions))
    return nodes.map_partitions(index_docinfo_part, snap, meta=DOCINFO_META)


def run_signatures(df: pd.DataFrame, parts: tuple[str, ...], signature_dir: str) -> pd.DataFrame:
    """(node, signature bytes) of the run's nodes in `df` (column node)."""
    out = []
    df = df.assign(part=df["node"].to_numpy() >> np.int64(32))
    for part, group in df.groupby("part", sort=True):
        nodes = np.unique(group["node"].to_numpy())
        table = storage.read_table(storage.join(signature_dir, parts[int(part)]), columns=["signature"])
        signatures = signature_matrix(table.take(pa.array(nodes & 0xFFFFFFFF)))
        out.append(pd.DataFrame({"node": nodes, "signature": [s.tobytes() for s in signatures]}))
    return pd.concat(out, ignore_index=True) if out else SIG_META.copy()


def index_signatures(df: pd.DataFrame, snap: tuple[str, int, str]) -> pd.DataFrame:
    """(node, signature bytes) of the index nodes in `df` (columns node, ipart)."""
    out = []
    for nodes, column in _index_rows(df, snap, "signature"):
        signatures = signature_matrix(pa.table({"signature": column}))
        out.append(pd.DataFrame({"node": nodes, "signature": [s.tobytes() for s in signatures]}))
    return pd.concat(out, ignore_index=True) if out else SIG_META.copy()


def _estimate(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    equal = [np.mean(np.frombuffer(a, np.uint32) == np.frombuffer(b, np.uint32)) for a, b in zip(df["su"], df["sv"])]
    keep = np.asarray(equal, dtype=float) >= threshold
    return pd.DataFrame({"u": df["u"].to_numpy()[keep], "v": df["v"].to_numpy()[keep]}).astype("int64")


def verify_index_edges(edges: dd.DataFrame, parts: tuple[str, ...], signature_dir: str, snap: tuple[str, int, str],
                       threshold: float, npartitions: int) -> dd.DataFrame:
    """The edges (u in this run, v indexed) whose signatures agree in at least `threshold` of
    their values."""
    method = shuffle_method(npartitions)
    us = edges[["u"]].rename(columns={"u": "node"}).shuffle(on="node", npartitions=npartitions, shuffle_method=method)
    us = us.map_partitions(run_signatures, parts, str(signature_dir), meta=SIG_META)
    vs = edges[["v"]].rename(columns={"v": "node"})
    vs = vs.map_partitions(_with_index_part, meta=NODE_META)
    vs = vs.shuffle(on="ipart", npartitions=npartitions, shuffle_method=method)
    vs = vs.map_partitions(index_signatures, snap, meta=SIG_META)
    pairs = edges.merge(us.rename(columns={"node": "u", "signature": "su"}), on="u", npartitions=npartitions,
                        shuffle_method=method)
    pairs = pairs.merge(vs.rename(columns={"node": "v", "signature": "sv"}), on="v", npartitions=npartitions,
                        shuffle_method=method)
    return pairs.map_partitions(_estimate, threshold, meta=edges._meta)


# -- remove_duplicates ------------------------------------------------------------------------

def stage_part(part: str, signature_dir: str, decisions_dir: str, out_dir: str, run: str,
               lsh_shape: tuple[int, int]) -> int:
    """Write the index entries of one part's kept documents (id, run, band keys, signature);
    on a worker. Returns how many."""
    bands, rows = lsh_shape
    table = storage.read_table(storage.join(signature_dir, part), columns=["id", "shingles", "signature"])
    keep = table["shingles"].to_numpy() > 0
    decisions = storage.join(decisions_dir, part)
    if storage.exists(decisions):
        keep[storage.read_table(decisions, columns=["row"])["row"].to_numpy()] = False
    if not keep.any():
        return 0
    table = table.filter(pa.array(keep))
    signatures = signature_matrix(table)
    keys = band_keys(signatures, bands, rows).view(np.int64)  # the same bits as lsh_buckets' keys
    n = table.num_rows
    entries = pa.table({
        "id": table["id"], "run": pa.array([run] * n, pa.string()),
        "keys": pa.FixedSizeListArray.from_arrays(pa.array(keys.reshape(-1), pa.int64()), bands),
        "signature": pa.FixedSizeListArray.from_arrays(pa.array(signatures.reshape(-1), pa.uint32()),
                                                       signatures.shape[1]),
    })
    write_parquet(entries, storage.join(out_dir, part))
    return n
