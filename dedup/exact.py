"""`exact_dedup`: remove documents whose normalised text equals another's, across all inputs.

Each worker hashes the normalised text of its parts (64-bit BLAKE2b; at 10^9 documents the
chance of any false match is ~3%, at 10^7 ~3e-6), the hashes are shuffled by value on Dask
so equal texts meet, one representative per group is kept (by default the highest
`quality_score`, then the longest text, then the smallest id) and every other copy goes to
`rejected/` with reason `exact_dedup.duplicate` and `duplicate_of: <kept id>` in its
metadata. Output parts keep the input parts' names and row order.

    stages:
      - exact_dedup: {normalization: {lowercase: true, strip_punctuation: false}}
"""

from __future__ import annotations

import hashlib

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.compute as pc
from pydantic import Field

from dedup.decide import (
    DEFAULT_RANKING,
    GROUP_META,
    SUMMARY_META,
    RankKey,
    apply_all,
    audit_from_summary,
    decide,
    decided_once,
    rank_frame,
)
from dedup.normalize import Normalization, normalize
from pipeline import storage
from pipeline.io import parquet_rows
from pipeline.stage import GlobalStage, StageParams, register

PARTS_PER_TASK = 16


def text_hashes(texts) -> np.ndarray:
    digests = [hashlib.blake2b(t or b"", digest_size=8).digest() for t in texts]
    return np.frombuffer(b"".join(digests), dtype="<i8").copy()


def hash_parts(batch: list[tuple[int, str]], in_dir: str, norm: Normalization) -> pd.DataFrame:
    """Normalised-text hash and ranking columns of every row of a batch of parts (on a worker)."""
    frames = []
    for part_index, part in batch:
        table = storage.read_table(storage.join(in_dir, part))
        normed = pc.cast(normalize(table["text"], norm), "binary").to_pylist()
        frame = rank_frame(table, part_index).assign(group=text_hashes(normed))
        frames.append(frame[list(GROUP_META.columns)].astype(GROUP_META.dtypes.to_dict()))
    return pd.concat(frames, ignore_index=True) if frames else GROUP_META.copy()


def batches(parts: tuple[str, ...], size: int) -> list[list[tuple[int, str]]]:
    indexed = list(enumerate(parts))
    return [indexed[i:i + size] for i in range(0, len(indexed), size)]


@register
class ExactDedup(GlobalStage):
    """Remove exact duplicates of normalised text, keeping one representative."""

    name = "exact_dedup"

    class Params(StageParams):
        normalization: Normalization = Normalization()
        representative: tuple[RankKey, ...] = Field(
            DEFAULT_RANKING, min_length=1,
            description="keep order: quality_score (highest), length (longest), id (smallest), order (first read)")

    def run(self, ctx) -> dict:
        work = ctx.path("_work")
        decisions = storage.join(work, "decisions")
        audit = decided_once(decisions, lambda folder: self._decide(ctx, folder))
        apply_all(ctx, decisions, self.name, f"{self.name}.duplicate")
        storage.rm(work)
        return {"audit": audit}

    def _decide(self, ctx, out_dir: str) -> dict:
        rows = sum(parquet_rows(p) for p in ctx.input.paths())
        if not rows:
            return audit_from_summary(SUMMARY_META, 0)
        frame = dd.from_map(hash_parts, batches(ctx.input.parts, PARTS_PER_TASK), in_dir=ctx.input.dir,
                            norm=self.params.normalization, meta=GROUP_META, enforce_metadata=False)
        return decide(ctx.client, frame, self.params.representative, ctx.input.parts, out_dir, rows)
