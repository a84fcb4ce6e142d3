"""LSH buckets on Dask: band keys -> shuffle by key -> candidate edges, written as parquet.

Every document with shingles contributes one `(key, node)` row per band. A shuffle on `key`
brings each bucket into one partition; a bucket of k documents yields k - 1 *star* edges,
each member to the bucket's smallest node (the same connected components as all k(k-1)/2
pairs, in linear space). Edges found in several bands are made unique by a second shuffle on
`u`, and each partition is written as `edges/part-IIIII.parquet` with columns `u > v`.

    n_edges = write_edges(client, signature_paths, bands, rows, out_dir)
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa

from dedup.minhash import band_keys
from pipeline import storage
from pipeline.aggregate import shuffle_method
from pipeline.io import write_parquet

KEY_META = pd.DataFrame({"key": pd.Series([], dtype="int64"), "node": pd.Series([], dtype="int64")})
EDGE_META = pd.DataFrame({"u": pd.Series([], dtype="int64"), "v": pd.Series([], dtype="int64")})
KEYS_PER_PARTITION = 4_000_000  # 64 MB of (key, node) rows
SIGNATURE_FILES_PER_TASK = 8


def read_signatures(path: str, columns: list[str] | None = None) -> pa.Table:
    return storage.read_table(path, columns=columns)


def signature_matrix(table: pa.Table) -> np.ndarray:
    """The `signature` column (fixed-size lists of uint32) as an (n, num_perm) array."""
    column = table["signature"].combine_chunks()
    width = column.type.list_size
    return column.values.to_numpy().reshape(len(column), width)


def key_frame(paths: list[str], bands: int, rows: int) -> pd.DataFrame:
    """(key, node) for every band of every document with shingles in these signature files."""
    frames = []
    for path in paths:
        table = read_signatures(path, ["node", "shingles", "signature"])
        has = table["shingles"].to_numpy() > 0
        keys = band_keys(signature_matrix(table)[has], bands, rows)
        nodes = np.repeat(table["node"].to_numpy()[has], bands)
        frames.append(pd.DataFrame({"key": keys.reshape(-1).view(np.int64), "node": nodes}))
    return pd.concat(frames, ignore_index=True) if frames else KEY_META.copy()


def bucket_edges(df: pd.DataFrame) -> pd.DataFrame:
    """Star edges (member, smallest member) of every bucket with 2+ documents."""
    order = np.lexsort((df["node"].to_numpy(), df["key"].to_numpy()))
    key, node = df["key"].to_numpy()[order], df["node"].to_numpy()[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    head = node[np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))]
    # A document twice in a bucket is no edge; nor are two indexed documents (negative nodes,
    # dedup/index_minhash.py): a member that is indexed has an indexed head, the bucket's smallest.
    member = ~first & (node != head) & (node >= 0)
    return pd.DataFrame({"u": node[member], "v": head[member]})


def unique_edges(df: pd.DataFrame) -> pd.DataFrame:
    pairs = np.unique(np.stack([df["u"].to_numpy(), df["v"].to_numpy()], axis=1), axis=0)
    return pd.DataFrame({"u": pairs[:, 0], "v": pairs[:, 1]}).astype("int64") if len(pairs) else EDGE_META.copy()


def write_edge_part(df: pd.DataFrame, path: str) -> int:
    write_parquet(pa.table({"u": df["u"].to_numpy(), "v": df["v"].to_numpy()}), path)
    return len(df)


def write_edges(client, signature_paths: list[str], bands: int, rows: int, documents: int,
                out_dir: str, indexed: dd.DataFrame | None = None) -> tuple[int, list[str]]:
    """Write the candidate edges of all signature files under `out_dir`; return their number
    and the names of the files written (the stage's manifest records them). `indexed`: the
    (key, node) rows of an index's entries, joined in the same shuffle (`documents` counts them)."""
    batches = [[str(p) for p in signature_paths[i:i + SIGNATURE_FILES_PER_TASK]]
               for i in range(0, len(signature_paths), SIGNATURE_FILES_PER_TASK)]
    if not batches:
        return 0, []
    keys = dd.from_map(key_frame, batches, bands=bands, rows=rows, meta=KEY_META, enforce_metadata=False)
    if indexed is not None:
        keys = dd.concat([keys, indexed])
    n_parts = max(1, -(-documents * bands // KEYS_PER_PARTITION))
    raw = keys.shuffle(on="key", npartitions=n_parts, shuffle_method=shuffle_method(n_parts))
    raw = raw.map_partitions(bucket_edges, meta=EDGE_META)
    edges = raw.shuffle(on="u", npartitions=n_parts, shuffle_method=shuffle_method(n_parts))
    edges = edges.map_partitions(unique_edges, meta=EDGE_META)
    names = [f"part-{i:05d}.parquet" for i in range(edges.npartitions)]
    writes = [dask.delayed(write_edge_part)(part, storage.join(out_dir, name))
              for name, part in zip(names, edges.to_delayed())]
    return int(sum(client.gather(client.compute(writes)))), names
