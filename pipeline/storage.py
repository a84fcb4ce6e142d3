"""Every path is an fsspec URL: local paths, `s3://bucket/key`, `gs://...`, `memory://...`.

A thin layer over fsspec that the runner, the stages, `thresher stats` and the trainer share, so
no stage code builds paths with `pathlib`: locations are strings joined with `join`, and every
read, listing and delete goes through the file system fsspec picks for the URL
(`fsspec.core.url_to_fs`). Storage options (endpoint, credentials, anonymous access) come from
`configure(prefix, options)` — the config's `storage_options:` — else from the environment
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ... as s3fs/botocore read them). Options live only in
memory (and in a Dask worker plugin): they are never written to a file.

Local paths behave exactly as before (same strings, same bytes). Writes themselves live in
`pipeline.io` (temp file + rename locally, one whole-object PUT on object stores).

    configure("s3://bucket/out", {"endpoint_url": "http://127.0.0.1:9000"})
    join("s3://bucket/out", "00-read", "part-00000-0000.parquet"); exists(url); rm(url)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import fsspec
import pyarrow.parquet as pq

_OPTIONS: dict[str, dict[str, Any]] = {}  # URL prefix -> fsspec storage options


def is_local(url: str | os.PathLike) -> bool:
    url = os.fspath(url)
    return "://" not in url or url.startswith("file://")


def configure(prefix: str, options: dict[str, Any] | None) -> None:
    """Use `options` for every URL under `prefix` (in this process; see `StoragePlugin`)."""
    if options:
        _OPTIONS[str(prefix).rstrip("/")] = dict(options)


def options_for(url: str) -> dict[str, Any]:
    """The configured options of the longest prefix of `url`, else none (fsspec's defaults)."""
    best = max((p for p in _OPTIONS if url == p or url.startswith(p + "/")), key=len, default=None)
    return dict(_OPTIONS[best]) if best is not None else {}


def register_on(client) -> None:
    """Make this process's storage options known to every worker of `client`, present and
    future, through a worker plugin (held in memory, never written to disk)."""
    if not _OPTIONS:
        return
    from distributed.diagnostics.plugin import WorkerPlugin

    class StoragePlugin(WorkerPlugin):
        name = "thresher-storage"

        def __init__(self, options: dict[str, dict[str, Any]]):
            self.options = options

        def setup(self, worker) -> None:
            _OPTIONS.update(self.options)

    client.register_plugin(StoragePlugin(dict(_OPTIONS)), name=StoragePlugin.name)


def filesystem(url: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """(file system, path inside it) for `url`."""
    url = os.fspath(url)
    return fsspec.core.url_to_fs(url, **options_for(url))


def _fresh(url: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """Like `filesystem`, with the cached listings under `url` dropped: other processes (the
    Dask workers) write there, and a commit record must never be missed for a stale listing."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    return fs, path


# -- URL strings ------------------------------------------------------------------------------

def join(base: str | os.PathLike, *names: str) -> str:
    base = os.fspath(base)
    if is_local(base):
        return os.path.join(base, *names)
    return "/".join([base.rstrip("/"), *(n.strip("/") for n in names)])


def basename(url: str | os.PathLike) -> str:
    return posixpath.basename(os.fspath(url).rstrip("/"))


def stem(url: str | os.PathLike) -> str:
    name = basename(url)
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def parent(url: str | os.PathLike) -> str:
    url = os.fspath(url).rstrip("/")
    return os.path.dirname(url) if is_local(url) else url.rsplit("/", 1)[0]


def absolute(url: str | os.PathLike) -> str:
    """A local path made absolute; a URL as it is."""
    url = os.fspath(url)
    return os.path.abspath(url) if is_local(url) else url


# -- reading, listing, deleting ---------------------------------------------------------------

def open(url: str | os.PathLike, mode: str = "rb", **kwargs: Any):
    url = os.fspath(url)
    return fsspec.open(url, mode, **{**options_for(url), **kwargs})


@contextlib.contextmanager
def open_lines(url: str | os.PathLike, **kwargs: Any) -> Iterator[IO[bytes]]:
    """`url` opened for reading, decompressed as its name says (.gz, .zst, .bz2, .xz), as a
    stream that iterates line by line. fsspec's .zst codec (zstandard's reader, used on Python
    < 3.14 without backports.zstd) has no readline: iterating it raised at the first line."""
    with open(url, "rb", compression="infer", **kwargs) as f:
        yield f if isinstance(f, io.IOBase) else io.BufferedReader(f)


def exists(url: str | os.PathLike) -> bool:
    fs, path = _fresh(url)
    return fs.exists(path)


def isfile(url: str | os.PathLike) -> bool:
    fs, path = _fresh(url)
    return fs.isfile(path)


def isdir(url: str | os.PathLike) -> bool:
    fs, path = _fresh(url)
    return fs.isdir(path)


def size(url: str | os.PathLike) -> int:
    fs, path = _fresh(url)
    return fs.size(path)


def read_bytes(url: str | os.PathLike) -> bytes:
    fs, path = filesystem(url)
    return fs.cat_file(path)


def read_many(folder: str | os.PathLike, names: list[str]) -> list[bytes]:
    """The bytes of the files `names` under `folder`, in order; on object storage fetched
    concurrently (fsspec's `cat_ranges`), not one request after another."""
    fs, path = filesystem(folder)
    paths = [posixpath.join(path, n) for n in names]  # no glob expansion (unlike `cat`): names are literal
    return fs.cat_ranges(paths, None, None, on_error="raise") if paths else []


def listdir(url: str | os.PathLike) -> list[str]:
    """Names (not paths) directly under folder `url`, sorted; [] when it does not exist."""
    fs, path = _fresh(url)
    try:
        return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []


def list_details(url: str | os.PathLike) -> dict[str, dict]:
    """Name -> fsspec info (`type`, `size`, and `mtime` or `ETag`) of each entry directly under
    folder `url`, from one fresh listing; {} when it does not exist."""
    fs, path = _fresh(url)
    try:
        return {posixpath.basename(e["name"].rstrip("/")): e for e in fs.ls(path, detail=True)}
    except FileNotFoundError:
        return {}


def walk_files(url: str | os.PathLike) -> list[str]:
    """Paths of every file under folder `url`, relative to it, sorted."""
    fs, path = _fresh(url)
    if not fs.exists(path):
        return []
    root = path.rstrip("/") + "/"
    return sorted(p[len(root):] for p in fs.find(path) if p.startswith(root))


def rm(url: str | os.PathLike, recursive: bool = True) -> None:
    """Delete `url` (a folder with everything under it); nothing to delete is no error."""
    fs, path = _fresh(url)
    try:
        if fs.exists(path):
            fs.rm(path, recursive=recursive)
    except FileNotFoundError:
        pass


def makedirs(url: str | os.PathLike) -> None:
    """Create a local folder; object stores have no folders to create."""
    if is_local(url):
        os.makedirs(os.fspath(url), exist_ok=True)


def copy(src: str, dst: str) -> None:
    """Copy one file within a file system (a server-side copy on object stores)."""
    fs, src_path = filesystem(src)
    fs.copy(src_path, filesystem(dst)[1])


def sha256(url: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(url, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- Parquet ------------------------------------------------------------------------------------

def read_table(url: str | os.PathLike, columns: list[str] | None = None):
    if is_local(url):
        return pq.read_table(url, columns=columns)
    fs, path = filesystem(url)
    return pq.read_table(path, columns=columns, filesystem=fs)


def parquet_file(url: str | os.PathLike) -> pq.ParquetFile:
    if is_local(url):
        return pq.ParquetFile(url)
    fs, path = filesystem(url)
    return pq.ParquetFile(fs.open(path, "rb"))


def read_schema(url: str | os.PathLike):
    return parquet_file(url).schema_arrow


# -- local copies (memory-mapped shards, sentencepiece and fastText models) --------------------

def cache_dir() -> str:
    return os.environ.get("THRESHER_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "thresher-cache")


def local_file(url: str | os.PathLike, cache: str | None = None) -> str:
    """A local path holding `url`'s bytes: the path itself when local, else a copy in the cache
    (a folder per URL and version: its size and ETag or modification time), downloaded once."""
    url = os.fspath(url)
    if is_local(url):
        return url.removeprefix("file://")
    fs, path = _fresh(url)
    info = fs.info(path)
    version = f"{url}|{info.get('size')}|{info.get('ETag') or info.get('mtime') or info.get('LastModified')}"
    folder = os.path.join(cache or cache_dir(), hashlib.sha256(version.encode()).hexdigest()[:24])
    local = os.path.join(folder, basename(url))
    if not os.path.exists(local):
        os.makedirs(folder, exist_ok=True)
        tmp = f"{local}.tmp-{os.getpid()}"
        fs.get_file(path, tmp)
        os.replace(tmp, local)
    return local


def move(src: str, dst: str, delete_first: tuple[str, ...] = ()) -> None:
    """Move folder `src` to `dst` (which must not exist). Local disk: one rename. Object stores
    have no rename: every file is copied server-side, then the originals are deleted — the
    files named in `delete_first` (relative to `src`: those that mark the folder complete)
    before the rest, so a move killed half-way leaves the whole copy at `dst` and never a
    partial `src` that still looks complete."""
    if is_local(src):
        makedirs(parent(dst))
        os.replace(src, dst)
        return
    for rel in walk_files(src):
        copy(join(src, rel), join(dst, rel))
    for rel in delete_first:
        rm(join(src, rel), recursive=False)
    rm(src)
