"""`exact_dedup`: remove documents whose normalised text equals another's, across all inputs.

Each worker hashes the normalised text of its parts (64-bit BLAKE2b; at 10^9 documents the
chance of any false match is ~3%, at 10^7 ~3e-6), the hashes are shuffled by value on Dask
so equal texts meet, one representative per group is kept (by default the highest
`quality_score`, then the longest text, then the smallest id) and every other copy goes to
`rejected/` with reason `exact_dedup.duplicate` and `duplicate_of: <kept id>` in its
metadata. Output parts keep the input parts' names and row order.

    stages:
      - exact_dedup: {normalization: {lowercase: true, strip_punctuation: false}}
      - exact_dedup: {index: s3://bucket/dedup-index}   # also against what earlier runs kept

With `index`, documents whose hash an earlier run kept are removed as well (reason
`exact_dedup.duplicate_in_index`, `duplicate_of: <the indexed id>`), and the hashes of the
documents this run keeps are added to the index when the stage ends (dedup/index.py).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.compute as pc
from pydantic import Field

from dedup.decide import (
    DEFAULT_RANKING,
    GROUP_META,
    SUMMARY_META,
    NewEntries,
    RankKey,
    apply_all,
    audit_from_summary,
    decide,
    decided_once,
    rank_frame,
)
from dedup.index import STAGED, DedupIndex, IndexParams, Session, group_frame, session
from dedup.normalize import Normalization, normalize
from pipeline import storage
from pipeline.context import GlobalResult
from pipeline.parts import part_rows, read_part
from pipeline.stage import GlobalStage, register

PARTS_PER_TASK = 16


def text_hashes(texts) -> np.ndarray:
    digests = [hashlib.blake2b(t or b"", digest_size=8).digest() for t in texts]
    return np.frombuffer(b"".join(digests), dtype="<i8").copy()


def hash_parts(batch: list[tuple[int, str]], in_dir: str, norm: Normalization) -> pd.DataFrame:
    """Normalised-text hash and ranking columns of every row of a batch of parts (on a worker)."""
    frames = []
    for part_index, part in batch:
        table = read_part(storage.join(in_dir, part))
        normed = pc.cast(normalize(table["text"], norm), "binary").to_pylist()
        frame = rank_frame(table, part_index).assign(group=text_hashes(normed))
        frames.append(frame[list(GROUP_META.columns)].astype(GROUP_META.dtypes.to_dict()))
    return pd.concat(frames, ignore_index=True) if frames else GROUP_META.copy()


def batches(parts: tuple[str, ...], size: int) -> list[list[tuple[int, str]]]:
    indexed = list(enumerate(parts))
    return [indexed[i:i + size] for i in range(0, len(indexed), size)]


class KeyedDedup(GlobalStage):
    """The run shared by exact_dedup and url_dedup: documents with equal keys meet in a Dask
    shuffle and one is kept; with `index`, also against the entries of earlier runs, and the
    documents kept here are added to the index at the end (dedup/index.py)."""

    index_kind: ClassVar[str]  # the index subfolder (Stage.kind is "global")
    reason: ClassVar[str]
    meta: ClassVar[pd.DataFrame] = GROUP_META

    def index_settings(self) -> dict:
        """What the keys depend on: an index built with other settings is refused."""
        raise NotImplementedError

    def key_frame(self, ctx) -> dd.DataFrame:
        """This run's documents as a Dask DataFrame like `meta` (its `group` is the key)."""
        raise NotImplementedError

    def index(self) -> DedupIndex | None:
        if self.params.index is None:
            return None
        return DedupIndex(self.params.index, self.index_kind, self.index_settings(), f"{self.name}.index")

    def check(self) -> None:
        if (index := self.index()) is not None:
            index.preflight(output="")

    def run(self, ctx) -> GlobalResult:
        work = ctx.path("_work")
        decisions = storage.join(work, "decisions")
        with session(ctx, self.index(), work) as index:
            audit = decided_once(decisions, lambda folder: self._decide(ctx, folder, index))
            stats = apply_all(ctx, decisions, self.name, self.reason)
            extra = {"index": index.commit(storage.join(decisions, STAGED))} if index else {}
        storage.rm(work)
        return GlobalResult(stats, ctx.input.parts, {"audit": audit, **extra})

    def _decide(self, ctx, out_dir: str, index: Session | None) -> dict:
        rows = sum(part_rows(p) for p in ctx.input.paths())
        if not rows:
            return audit_from_summary(SUMMARY_META, 0)
        frame, new, snap = self.key_frame(ctx), None, None
        if index is not None:
            snap = index.snapshot()
            if (indexed := group_frame(snap, self.meta)) is not None:
                frame, rows = dd.concat([frame, indexed]), rows + snap.entries
            new = NewEntries(storage.join(out_dir, STAGED), index.run)
        audit = decide(ctx.client, frame, self.params.representative, ctx.input.parts, out_dir, rows, new)
        return {**audit, "index": snap.describe()} if snap is not None else audit


@register
class ExactDedup(KeyedDedup):
    """Remove exact duplicates of normalised text, keeping one representative."""

    name = "exact_dedup"
    index_kind = "exact"
    reason = "exact_dedup.duplicate"

    class Params(IndexParams):
        normalization: Normalization = Normalization()
        representative: tuple[RankKey, ...] = Field(
            DEFAULT_RANKING, min_length=1,
            description="keep order: quality_score (highest), length (longest), id (smallest), order (first read)")

    def index_settings(self) -> dict:
        normalization = self.params.normalization.model_dump(mode="json")
        return {"key": "blake2b-64 of the normalised text", "normalization": normalization}

    def key_frame(self, ctx) -> dd.DataFrame:
        return dd.from_map(hash_parts, batches(ctx.input.parts, PARTS_PER_TASK), in_dir=ctx.input.dir,
                           norm=self.params.normalization, meta=GROUP_META, enforce_metadata=False)
