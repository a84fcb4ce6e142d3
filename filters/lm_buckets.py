"""The `lm_buckets` stage: CCNet's head / middle / tail label for every document, by global
percentiles of a score (`lm_logprob` by default, so head = lowest perplexity).

CCNet splits each language's documents into three equal parts by perplexity. A label per
document needs the cut points over the whole dataset, which one partition cannot know, so this
is a global stage: it finds the two cuts exactly with `select`'s distributed radix select
(`filters.select.exact_cut`: the scores' order-preserving keys, 16-bit digit histograms on the
workers, ties broken by document id) and then writes the label (`head`, `middle`, `tail`; null
without a score) on every part, as the column `lm_bucket` and as `metadata.lm_bucket`. No
document is dropped: keep buckets with
`- field_values: {field: metadata.lm_bucket, keep: [head, middle]}`, or skip this stage and
select a top fraction directly (`- select: {column: lm_logprob, keep_top: 0.33}`). The manifest
records the cuts (`buckets.head` / `buckets.middle`: threshold and tie id).

Config: `- lm_buckets: {column: lm_logprob, head: 0.3333, middle: 0.3333}`
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from filters.lm_score import column_values, set_column
from filters.select import exact_cut, keep_mask
from pipeline import storage
from pipeline.context import GlobalResult
from pipeline.io import commit_part
from pipeline.parts import read_part
from pipeline.record import metadata_to_json
from pipeline.stage import GlobalStage, StageParams, register
from pipeline.stats import part_stats

BUCKETS = ("head", "middle", "tail")


@register
class LmBuckets(GlobalStage):
    """Label documents head / middle / tail by global percentiles of a score (CCNet)."""

    name = "lm_buckets"

    class Params(StageParams):
        column: str = Field("lm_logprob", description="numeric score column; higher is better (head)")
        head: float = Field(1 / 3, gt=0, lt=1, description="fraction of scored documents labelled head")
        middle: float = Field(1 / 3, gt=0, lt=1, description="fraction labelled middle (the rest: tail)")

        @model_validator(mode="after")
        def _fractions(self):
            if self.head + self.middle >= 1:
                raise ValueError(f"head + middle must be below 1 (got {self.head + self.middle:g}); "
                                 "the rest is the tail")
            return self

    def run(self, ctx) -> GlobalResult:
        p = self.params
        if p.column not in ctx.input.schema.names:
            raise ValueError(f"lm_buckets.column: {p.column!r} is not a column of the input; "
                             "run lm_score before lm_buckets")
        paths = ctx.input.paths()
        cuts = {"head": exact_cut(ctx, paths, p.column, p.head),
                "middle": exact_cut(ctx, paths, p.column, p.head + p.middle)}
        rules = {name: {"threshold": c["threshold"], "tie_id": c["threshold_tie_id"], "alpha": None,
                        "keep_none": c["kept"] == 0} for name, c in cuts.items()}
        stats = ctx.map_parts(label_part, "lm-buckets", column=p.column, rules=rules)
        return GlobalResult(stats, ctx.input.parts, {"buckets": {"column": p.column, **cuts}})


def label_part(part: str, in_dir: str, out_dir: str, column: str, rules: dict[str, dict]) -> dict:
    """Worker: write one part with its `lm_bucket` column, then its commit record."""
    table = read_part(storage.join(in_dir, part))
    head, scored = keep_mask(table, column, rules["head"])
    upper, _ = keep_mask(table, column, rules["middle"])  # head and middle
    labels = np.where(head, "head", np.where(upper, "middle", "tail"))
    values = [label if has else None for label, has in zip(labels.tolist(), scored.tolist())]
    metadata = [_with_bucket(m, v) for m, v in zip(column_values(table, "metadata"), values)]
    labelled = set_column(set_column(table, "metadata", pa.array(metadata, pa.string())),
                          "lm_bucket", pa.array(values, pa.string()))
    stats = part_stats(table, labelled)
    for name in BUCKETS:
        stats.count(f"bucket.{name}", int((scored & (labels == name)).sum()))
    stats.count("no_score", int((~scored).sum()))
    return commit_part(out_dir, part, labelled, None, stats)


def _with_bucket(metadata: str | None, bucket: str | None) -> str:
    return metadata_to_json({**(json.loads(metadata) if metadata else {}), "lm_bucket": bucket})
