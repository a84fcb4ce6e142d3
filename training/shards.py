"""The tokenize stage's shards opened for training (contract: SHARDS.md).

`tokenization.manifest` validates the manifest; this module finds it (a manifest.json, its
folder, or a pipeline output holding an `NN-tokenize/` stage) and opens each domain's training
shards and held-out `valid` shard as `tokenization.indexed.IndexedDataset`s. The path may be an
fsspec URL (`s3://bucket/out`): shards are then copied to a local cache
(`THRESHER_CACHE_DIR`, default the temp folder's `thresher-cache/`) and memory-mapped there.

    manifest = load_manifest("out/demo")          # or .../NN-tokenize/ or .../manifest.json
    manifest.vocab_size, manifest.eos_id, manifest.mixture        # {"financial": 0.51, ...}
    manifest.domains["financial"].train    # [IndexedDataset, ...]; .valid: IndexedDataset | None
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import storage
from tokenization import manifest as shard_manifest
from tokenization.indexed import IndexedDataset


@dataclass(frozen=True)
class DomainShards:
    name: str
    tokens: int
    train: list[IndexedDataset]
    valid: IndexedDataset | None


@dataclass(frozen=True)
class Manifest:
    path: Path | str
    vocab_size: int
    eos_id: int
    mixture: dict[str, float]
    domains: dict[str, DomainShards]


def find_manifest(path: str | Path) -> Path | str:
    """`path` itself, `path/manifest.json`, or, for a pipeline output, its `NN-tokenize/manifest.json`."""
    if not storage.is_local(path):
        return _find_remote(str(path))
    path = Path(path)
    if path.is_dir() and not (path / "manifest.json").is_file():
        found = sorted(path.glob("*-tokenize/manifest.json"))
        if found:
            return found[-1]
    return path / "manifest.json" if path.is_dir() else path


def _find_remote(url: str) -> str:
    if not storage.isdir(url):
        return url
    if storage.isfile(storage.join(url, "manifest.json")):
        return storage.join(url, "manifest.json")
    found = [storage.join(url, n, "manifest.json") for n in storage.listdir(url) if n.endswith("-tokenize")]
    found = [f for f in found if storage.isfile(f)]
    return found[-1] if found else storage.join(url, "manifest.json")


def load_manifest(path: str | Path) -> Manifest:
    path = find_manifest(path)
    if not storage.isfile(path):
        raise FileNotFoundError(f"data.manifest: {path} does not exist; run a pipeline with a tokenize stage first")
    loaded = shard_manifest.load_manifest(path)
    raw = loaded.manifest
    domains = {name: DomainShards(name, entry.tokens, loaded.open_shards(name), loaded.open_valid(name))
               for name, entry in sorted(raw.domains.items())}
    if not domains:
        raise ValueError(f"data.manifest: {path} lists no domains")
    # `mixture` holds the mix stage's target shares (or, with no mix stage, the shares written).
    total = sum(raw.mixture.values())
    return Manifest(path, raw.vocab_size, raw.eos_id, {n: w / total for n, w in raw.mixture.items()}, domains)
