"""`manifest.json` of a tokenize stage's output: the contract between thresher's shards and a
trainer (the format is described in the README's "Token shards" section).

    from tokenization.manifest import load_manifest
    m = load_manifest("out/demo/07-tokenize")          # the folder or its manifest.json
    m.weights                                         # {"financial": 0.51, "general": 0.49}
    for ds in m.open_shards("financial"): ds[0], ds.get(3, offset=10, length=128)
    valid = m.open_valid("financial")                 # an IndexedDataset or None
    m.tokenizer_path                                  # the sentencepiece model, resolved

The folder may be an fsspec URL (`s3://bucket/out/07-tokenize`): shards are then memory-mapped
from local cached copies (`pipeline.storage.local_file`).

Loading validates the structure (a wrong or missing key raises `ValueError` naming it) and
that every shard's `.bin`/`.idx` exists; `verify()` also opens each shard and checks its
dtype and document and token counts against the manifest.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline import storage
from pipeline.io import read_json, write_json
from tokenization.indexed import IndexedDataset

MANIFEST_NAME = "manifest.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # newer writers may add keys


class ShardEntry(_Model):
    prefix: str = Field(min_length=1)
    documents: int = Field(ge=0)
    tokens: int = Field(ge=0)


class DomainEntry(_Model):
    documents: int = Field(ge=0)
    tokens: int = Field(ge=0)
    weight: float = Field(ge=0, le=1)
    shards: list[ShardEntry]
    valid: ShardEntry | None = None


class TokenizerEntry(_Model):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    vocab_size: int = Field(gt=0)
    model_type: str


class Manifest(_Model):
    format: Literal["megatron-indexed"]
    format_version: Literal[1]
    tokenizer: TokenizerEntry
    vocab_size: int = Field(gt=0)
    dtype: Literal["uint16", "int32"]
    eos_id: int = Field(ge=0)
    bos_id: int | None = None
    mixture: dict[str, float]
    domains: dict[str, DomainEntry]


class ShardManifest:
    """A loaded, validated manifest and the folder it describes."""

    def __init__(self, manifest: Manifest, directory: Path | str):
        self.manifest, self.dir = manifest, directory

    @property
    def domains(self) -> list[str]:
        return list(self.manifest.domains)

    @property
    def weights(self) -> dict[str, float]:
        return {name: entry.weight for name, entry in self.manifest.domains.items()}

    @property
    def tokenizer_path(self) -> Path | str:
        """The model path as written; if it does not exist (the output folder moved), the
        copy beside the manifest. A model on an object store: a local cached copy."""
        if not storage.is_local(self.dir) or not storage.is_local(self.manifest.tokenizer.path):
            path = self.manifest.tokenizer.path
            path = path if storage.isfile(path) else storage.join(self.dir, storage.basename(path))
            return storage.local_file(path)
        path = Path(self.manifest.tokenizer.path)
        path = path if path.is_absolute() else self.dir / path
        return path if path.exists() else self.dir / path.name

    def open_shards(self, domain: str) -> list[IndexedDataset]:
        return [IndexedDataset(storage.join(self.dir, s.prefix)) for s in self._domain(domain).shards]

    def open_valid(self, domain: str) -> IndexedDataset | None:
        valid = self._domain(domain).valid
        return IndexedDataset(storage.join(self.dir, valid.prefix)) if valid else None

    def _domain(self, domain: str) -> DomainEntry:
        if domain not in self.manifest.domains:
            raise ValueError(f"domain {domain!r} is not in {storage.join(self.dir, MANIFEST_NAME)}; "
                             f"it has {self.domains}")
        return self.manifest.domains[domain]

    def verify(self) -> None:
        """Open every shard and check dtype, documents and tokens against the manifest."""
        for entry in self.manifest.domains.values():
            for shard in entry.shards + ([entry.valid] if entry.valid else []):
                ds = IndexedDataset(storage.join(self.dir, shard.prefix))
                if ds.dtype.name != self.manifest.dtype or len(ds) != shard.documents or ds.num_tokens != shard.tokens:
                    raise ValueError(f"{shard.prefix}: holds {len(ds)} documents / {ds.num_tokens} tokens of "
                                     f"{ds.dtype.name}; the manifest says {shard.documents} / {shard.tokens} "
                                     f"of {self.manifest.dtype}")


def load_manifest(path: str | os.PathLike) -> ShardManifest:
    path = Path(path) if storage.is_local(path) else str(path)
    file = storage.join(path, MANIFEST_NAME) if storage.isdir(path) else path
    file = Path(file) if storage.is_local(file) else file
    if not storage.isfile(file):
        raise ValueError(f"{file}: no shard manifest here; point to a tokenize stage's output folder")
    try:
        manifest = Manifest.model_validate(read_json(file))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{file}: {where}: {first['msg']}") from None
    _check(manifest, file)
    return ShardManifest(manifest, file.parent if isinstance(file, Path) else storage.parent(file))


def _check(manifest: Manifest, file: Path | str) -> None:
    if set(manifest.mixture) != set(manifest.domains):
        raise ValueError(f"{file}: mixture names {sorted(manifest.mixture)} but domains are {sorted(manifest.domains)}")
    if manifest.domains and not math.isclose(sum(manifest.mixture.values()), 1.0, abs_tol=1e-4):
        raise ValueError(f"{file}: mixture weights add up to {sum(manifest.mixture.values())}, not 1")
    for name, entry in manifest.domains.items():
        for shard in entry.shards + ([entry.valid] if entry.valid else []):
            for suffix in (".bin", ".idx"):
                if not storage.isfile(storage.join(storage.parent(file), shard.prefix + suffix)):
                    raise ValueError(f"{file}: domains.{name}: {shard.prefix}{suffix} is missing")
        if (entry.documents != sum(s.documents for s in entry.shards)
                or entry.tokens != sum(s.tokens for s in entry.shards)):
            raise ValueError(f"{file}: domains.{name}: documents/tokens do not add up over its shards")


def write_manifest(manifest: dict, directory: str | os.PathLike) -> str:
    """Validate `manifest` against the contract and write it as `directory/manifest.json`."""
    Manifest.model_validate(manifest)
    path = storage.join(directory, MANIFEST_NAME)
    write_json(manifest, path)
    return path
