"""Incremental dedup: an index of what earlier runs kept, so that a new crawl is deduplicated
against them without re-reading them.

`exact_dedup`, `url_dedup` and `minhash_signatures` (for the four MinHash stages) take
`index: PATH`, any fsspec folder; each kind of stage keeps its entries in a subfolder, so one
path serves a whole recipe:

    PATH/<kind>/_index.json                   the manifest (kind: exact | url | minhash)
    PATH/<kind>/parts/<key>/part-NNNNN.parquet immutable; an entry counts once the manifest lists it
    PATH/<kind>/_lock.json                    while a run uses the index (pipeline/lock.py)

What an entry stores, per document a run kept:
- exact, url: `key` (int64: the 64-bit BLAKE2b of the normalised text or URL), `id`, `run`;
- minhash: `id`, `run`, `keys` (its band keys, bands x int64: what a new document's keys are
  joined with) and `signature` (num_perm x uint32: to verify a candidate pair against an indexed
  document whose text is not re-read, by the fraction of equal signature values).
The manifest records the settings the keys depend on (normalisation; tracking parameters;
shingles, permutations, seed, bands x rows); a stage with other settings is refused, naming them.

A run reads the index on the workers (index parts are read as Dask partitions and joined with the
run's keys in the same shuffle; the client reads only the manifest), removes its documents that
collide with an entry (reason `<stage reason>_in_index`, `duplicate_of: <indexed id>`), and at the
end of the stage that applies the removals — after its own parts are committed, before its
manifest — copies the entries it kept into `parts/<key>/` and appends a commit to the manifest,
written last. `key` is a hash of the stage's output folder and fingerprint: a stage that reruns
after its commit (killed before its manifest) finds its key there and commits nothing twice. The
commit names the run (`run`: output folder, fingerprint and time; the same string fills the
entries' `run` column). A killed run commits nothing. A run never reads the commits of its own
output folder (so a rerun decides as its first attempt did) and reads the others as they were
when its stage began (a killed run resumed after another run committed keeps its decisions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from pipeline import lock, storage
from pipeline.config import config_hash
from pipeline.io import parquet_rows, read_json, write_bytes, write_json, write_parquet
from pipeline.stage import StageParams

MANIFEST = "_index.json"
FORMAT = 1
PARTS_PER_TASK = 16
STAGED = "_index"  # where a stage writes the entries it will commit, inside its work folder


class IndexParams(StageParams):
    """The `index` setting of the dedup stages that can run incrementally."""

    omitted_at_default = ("index",)  # added later: old fingerprints hold
    index: str | None = Field(None, description="folder (fsspec URL) of what earlier runs kept: remove what is "
                              "there, add what this run keeps (incremental dedup)")


def index_nodes(ipart: int, n_rows: int) -> np.ndarray:
    """Node ids of an index part's rows: negative, so they never meet a run's (part << 32 | row)
    and are the smallest members of any group (connected components label by the smallest)."""
    return -(np.int64(1) + ((np.int64(ipart) << np.int64(32)) | np.arange(n_rows, dtype=np.int64)))


def index_position(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index part number, row) of index node ids."""
    x = -nodes - np.int64(1)
    return x >> np.int64(32), x & np.int64(0xFFFFFFFF)


def run_key(ctx) -> tuple[str, str]:
    """(key, fingerprint) of a stage run: the key is a hash of its output folder and fingerprint,
    so a rerun of the same stage into the same folder finds its own commit."""
    marker = ctx.path("_stage.json")  # the runner writes the stage's fingerprint there first
    fingerprint = (read_json(marker)["fingerprint"] if storage.exists(marker)
                   else config_hash([ctx.input.fingerprint, ctx.name]))
    return hashlib.sha256(f"{storage.absolute(ctx.dir)}|{fingerprint}".encode()).hexdigest()[:16], fingerprint


class DedupIndex:
    """One kind's folder of an index: its manifest, parts and lock."""

    def __init__(self, root: str, kind: str, settings: dict, setting: str):
        self.root, self.kind, self.settings, self.setting = storage.absolute(root), kind, settings, setting
        self.folder = storage.join(self.root, kind)

    def manifest(self) -> dict:
        path = storage.join(self.folder, MANIFEST)
        if storage.exists(path):
            return read_json(path)
        return {"format": FORMAT, "kind": self.kind, "settings": self.settings, "commits": []}

    def check(self) -> dict:
        """The manifest, after checking that its entries were made with this stage's settings."""
        manifest = self.manifest()
        if manifest.get("format") != FORMAT or manifest.get("kind") != self.kind:
            raise ValueError(f"{self.setting}: {self.folder} is not a {self.kind} index of format {FORMAT}")
        if manifest["settings"] != self.settings:
            differ = sorted(k for k in {**manifest["settings"], **self.settings}
                            if manifest["settings"].get(k) != self.settings.get(k))
            raise ValueError(f"{self.setting}: {self.folder} was built with other settings ({', '.join(differ)}: "
                             f"{[manifest['settings'].get(k) for k in differ]}, here "
                             f"{[self.settings.get(k) for k in differ]}); use another index or the same settings")
        return manifest

    def preflight(self, output: str) -> None:
        """Refuse before the run starts: other settings, or another live run holding the lock."""
        self.check()
        lock.check_free(self.folder, output, self.setting)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The first `commits` commits of an index but this run's: their parts in order (their number
    is `ipart`)."""

    folder: str
    commits: int
    parts: tuple[tuple[str, int], ...]  # (path relative to the folder, rows)
    without: str  # the output folder whose commits are left out
    read: int  # commits read (the others' parts)

    @property
    def entries(self) -> int:
        return sum(rows for _, rows in self.parts)

    def batches(self, size: int = PARTS_PER_TASK) -> list[list[tuple[int, str]]]:
        indexed = [(i, storage.join(self.folder, rel)) for i, (rel, _) in enumerate(self.parts)]
        return [indexed[i:i + size] for i in range(0, len(indexed), size)]

    def path(self, ipart: int) -> str:
        return storage.join(self.folder, self.parts[ipart][0])

    def describe(self) -> dict:
        return {"commits": self.read, "entries": self.entries}


@functools.lru_cache(maxsize=16)
def snapshot_at(folder: str, commits: int, without: str) -> Snapshot:
    """`snapshot` of an index's first `commits` commits, read once per worker process (commits
    are only ever appended, so the first ones never change)."""
    return snapshot(read_json(storage.join(folder, MANIFEST)), folder, without, commits)


def snapshot(manifest: dict, folder: str, without: str, commits: int | None = None) -> Snapshot:
    """The parts of the first `commits` commits (all by default), less those made by a stage
    of the run writing to the output folder `without` (a rerun must not find itself)."""
    chosen = manifest["commits"][:commits] if commits is not None else manifest["commits"]
    mine = storage.join(without, "")
    read = [c for c in chosen if not c["output"].startswith(mine)]
    parts = tuple((rel, rows) for c in read for rel, rows in zip(c["parts"], c["rows"]))
    return Snapshot(folder, len(chosen), parts, without, len(read))


class Session:
    """A stage's use of an index while it holds the lock: what it reads and what it commits."""

    def __init__(self, index: DedupIndex, ctx, work: str):
        self.index, self.work = index, work
        self.output = storage.absolute(ctx.dir)
        self.key, self.fingerprint = run_key(ctx)
        self.manifest = index.check()

    @functools.cached_property
    def time(self) -> str:
        """When this stage run first staged entries (kept in its work folder across resumes)."""
        stamp = storage.join(self.work, "index_run.json")
        saved = read_json(stamp) if storage.exists(stamp) else {}
        if saved.get("key") != self.key:
            saved = {"key": self.key, "time": lock.iso(lock.now())}
            write_json(saved, stamp)
        return saved["time"]

    @property
    def run(self) -> str:
        """The run id in the manifest and the entries' `run` column: output, fingerprint, time."""
        return f"{self.output}#{self.fingerprint}@{self.time}"

    def snapshot(self) -> Snapshot:
        """The index as this run reads it: every commit but those of this run's output folder
        (a stage rerun after its commit decides again as it did the first time)."""
        return snapshot(self.manifest, self.index.folder, storage.parent(self.output))

    def commit(self, staged: str) -> dict:
        """Copy the staged entry files into the index and append this run's commit to the
        manifest (last); nothing if this run's key is there already. Returns the stage's
        manifest block."""
        folder = self.index.folder
        lock.ensure_held(folder, self.index.setting)
        manifest = self.index.check()
        done = next((c for c in manifest["commits"] if c["key"] == self.key), None)
        if done is not None:
            return {"path": folder, "run": done["run"], "entries_added": done["entries"], "committed_before": True}
        names = sorted(n for n in storage.listdir(staged) if n.endswith(".parquet"))
        parts = [f"parts/{self.key}/{name}" for name in names]
        storage.makedirs(storage.join(folder, "parts", self.key))
        for name, rel in zip(names, parts):
            copy_file(storage.join(staged, name), storage.join(folder, rel))
        rows = [parquet_rows(storage.join(folder, rel)) for rel in parts]
        manifest["commits"].append({"run": self.run, "key": self.key, "output": self.output,
                                    "fingerprint": self.fingerprint, "time": self.time, "stage": self.index.setting,
                                    "entries": sum(rows), "parts": parts, "rows": rows})
        write_json(manifest, storage.join(folder, MANIFEST))
        return {"path": folder, "run": self.run, "entries_added": sum(rows)}


def copy_file(src: str, dst: str) -> None:
    """Copy one file, also from one file system to another (a run's local output to an index on S3)."""
    src_fs, src_path = storage.filesystem(src)
    dst_fs, dst_path = storage.filesystem(dst)
    if src_fs.protocol == dst_fs.protocol:
        src_fs.copy(src_path, dst_path)
    elif storage.is_local(src):
        dst_fs.put_file(src_path, dst_path)
    else:
        write_bytes(storage.read_bytes(src), dst)


@contextlib.contextmanager
def session(ctx, index: DedupIndex | None, work: str, keep_lock: bool = False):
    """Hold `index`'s lock around a stage's body (yields None without an index). The lock is
    given back when the body fails, and when it succeeds unless `keep_lock` (the MinHash stages
    hold it from lsh_buckets to remove_duplicates' commit)."""
    if index is None:
        yield None
        return
    output = storage.absolute(storage.parent(ctx.dir))
    lock.acquire(index.folder, output, index.setting)
    try:
        yield Session(index, ctx, work)
    except BaseException:
        lock.release(index.folder)
        raise
    if not keep_lock:
        lock.release(index.folder)


# -- exact and url entries: (key, id, run) ------------------------------------------------------

def key_frame(batch: list[tuple[int, str]], like: pd.DataFrame) -> pd.DataFrame:
    """Rows like `like` (GROUP_META and kin) for the entries of some index parts: `group` is the
    key, `node` the entry's (negative) node, `id` the indexed document; the ranking columns are
    empty, since an indexed document is always the one kept (see decide.rank_documents)."""
    frames = []
    for ipart, path in batch:
        table = storage.read_table(path, columns=["key", "id"])
        n = table.num_rows
        columns = {"group": table["key"].to_numpy(), "node": index_nodes(ipart, n), "id": table["id"].to_pylist()}
        for name, dtype in like.dtypes.items():
            if name not in columns:
                columns[name] = (np.full(n, np.nan) if dtype.kind == "f" else np.zeros(n, dtype) if dtype.kind in "iu"
                                 else [None] * n)
        frames.append(pd.DataFrame(columns)[list(like.columns)].astype(like.dtypes.to_dict()))
    return pd.concat(frames, ignore_index=True) if frames else like.copy()


def group_frame(snap: Snapshot, meta: pd.DataFrame) -> dd.DataFrame | None:
    """The entries of a snapshot as a Dask DataFrame like `meta`, one partition per 16 parts."""
    if not snap.parts:
        return None
    return dd.from_map(key_frame, snap.batches(), like=meta, meta=meta, enforce_metadata=False)


def write_key_entries(df: pd.DataFrame, folder: str, run: str, number: int) -> None:
    """Stage the kept documents of one decided partition (columns group, id) as index entries."""
    if not len(df):
        return
    table = pa.table({"key": pa.array(df["group"].to_numpy(), pa.int64()),
                      "id": pa.array(df["id"].tolist(), pa.string()), "run": pa.array([run] * len(df), pa.string())})
    write_parquet(table, storage.join(folder, f"part-{number:05d}.parquet"))
