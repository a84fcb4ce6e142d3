"""The `select` stage: keep documents by a score column (`quality_score` by default; higher
is better), by one of three rules:

- `threshold: 0.62` keeps documents scoring at or above it;
- `keep_top: 0.1` keeps exactly the best-scoring round(0.1 * N) of the N scored documents.
  The cut is found exactly, over the whole dataset, by a distributed radix select on the
  scores' order-preserving 64-bit keys (a histogram of 16 bits per pass on the workers, then
  the few candidates left are sorted on the client); equal scores are broken by document id
  (smaller id first), so the selection is deterministic. The cut goes into the manifest as
  `selection.threshold` (+ `selection.threshold_tie_id` when documents tie at the cut):
  giving those as `threshold`/`threshold_tie_id` reproduces the same selection;
- `alpha: 3` samples like NeMo Curator's fastText quality filter (the DCLM/GPT-3 recipe):
  keep a document when a Pareto(alpha) draw exceeds `1 - score`, so low scores survive
  sometimes; the draw is seeded by the run's seed and the document id (reproducible).

Documents without a score (null or NaN) are rejected as `select.missing_score`; the others
as `select.below_threshold` or `select.not_sampled`.

Config: `- select: {column: quality_score, keep_top: 0.1}`
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from filters.classifier import unit_hash
from pipeline import storage
from pipeline.aggregate import map_reduce
from pipeline.context import GlobalResult
from pipeline.parts import commit_removal, read_part
from pipeline.record import with_reason
from pipeline.stage import GlobalStage, StageParams, register

DIGIT_BITS = 16
COLLECT_LIMIT = 200_000  # candidates sorted on the client once a histogram bucket is this small
_SIGN = np.uint64(1 << 63)


@register
class Select(GlobalStage):
    """Keep documents by score: fixed threshold, exact top fraction, or Pareto sampling."""

    name = "select"

    class Params(StageParams):
        column: str = Field("quality_score", description="numeric score column; higher is better")
        threshold: float | None = Field(None, description="keep documents scoring >= threshold")
        threshold_tie_id: str | None = Field(
            None, description="with threshold: of documents scoring exactly it, keep ids <= this")
        keep_top: float | None = Field(None, gt=0, le=1, description="keep this fraction of scored documents")
        alpha: float | None = Field(None, gt=0, description="Pareto sampling: keep if pareto(alpha) > 1 - score")

        @model_validator(mode="after")
        def _one_rule(self):
            given = [n for n in ("threshold", "keep_top", "alpha") if getattr(self, n) is not None]
            if len(given) != 1:
                raise ValueError(f"give exactly one of threshold, keep_top, alpha (got {given or 'none'})")
            if self.threshold_tie_id is not None and self.threshold is None:
                raise ValueError("threshold_tie_id is only valid with threshold")
            return self

    def run(self, ctx) -> GlobalResult:
        p = self.params
        if p.column not in ctx.input.schema.names:
            raise ValueError(f"select.column: {p.column!r} is not a column of the input; "
                             f"columns are: {', '.join(ctx.input.schema.names)}")
        selection: dict[str, Any] = {"column": p.column}
        rule = {"threshold": p.threshold, "tie_id": p.threshold_tie_id, "alpha": p.alpha, "seed": ctx.seed}
        if p.keep_top is not None:
            cut = exact_cut(ctx, ctx.input.paths(), p.column, p.keep_top)
            selection.update(keep_top=p.keep_top, **cut)
            rule.update(threshold=cut["threshold"], tie_id=cut["threshold_tie_id"], keep_none=cut["kept"] == 0)
        else:
            selection.update(threshold=p.threshold, threshold_tie_id=p.threshold_tie_id, alpha=p.alpha)
        stats = ctx.map_parts(apply_part, "select", column=p.column, rule=rule, views=ctx.views)
        return GlobalResult(stats, ctx.input.parts, {"selection": {**selection, "kept": stats.docs_out}})


# -- the exact cut ---------------------------------------------------------------------------


def sort_keys(scores: np.ndarray) -> np.ndarray:
    """uint64 keys in the same order as the float64 `scores` (no NaN): flip the sign bit of
    non-negative numbers, all bits of negative ones."""
    bits = (np.asarray(scores, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 -> 0.0
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def key_to_score(key: int) -> float:
    bits = key & ~(1 << 63) if key >> 63 else ~key & (2**64 - 1)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _scored(path: str, column: str, with_ids: bool = False) -> tuple[np.ndarray, list[str] | None]:
    """Keys of the rows of `path` that have a score (and their ids)."""
    table = read_part(path, columns=[column, "id"] if with_ids else [column])
    scores = table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
    has = ~np.isnan(scores)
    ids = None
    if with_ids:
        ids = [i for i, h in zip(table.column("id").to_pylist(), has) if h]
    return sort_keys(scores[has]), ids


def _matching(keys: np.ndarray, prefix: int, bits: int) -> np.ndarray:
    return keys >> np.uint64(64 - bits) == np.uint64(prefix) if bits else np.ones(len(keys), dtype=bool)


def digit_counts(path: str, column: str, prefix: int, bits: int) -> dict[int, int]:
    """Worker: how many keys sharing the top `bits` bits `prefix` have each next 16-bit digit."""
    keys, _ = _scored(path, column)
    keys = keys[_matching(keys, prefix, bits)]
    digits = (keys >> np.uint64(64 - bits - DIGIT_BITS)) & np.uint64((1 << DIGIT_BITS) - 1)
    values, counts = np.unique(digits, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def candidates(path: str, column: str, prefix: int, bits: int) -> list[tuple[int, str]]:
    """Worker: (key, id) of the scored rows whose key starts with `prefix`."""
    keys, ids = _scored(path, column, with_ids=True)
    match = _matching(keys, prefix, bits)
    return [(int(k), i) for k, i, m in zip(keys.tolist(), ids, match) if m]


def add_counts(*hists: dict[int, int]) -> dict[int, int]:
    """The sum of digit histograms (merged in a tree on the workers: one part's histogram
    has up to 2^16 entries, so the client must not receive them side by side)."""
    out: dict[int, int] = {}
    for hist in hists:
        for digit, count in hist.items():
            out[digit] = out.get(digit, 0) + count
    return out


def exact_cut(ctx, paths: list[str], column: str, keep_top: float) -> dict[str, Any]:
    """The score (and tie-breaking id) of the round(keep_top * N)-th best scored document."""
    prefix, bits, need, scored = 0, 0, None, 0
    while True:
        hist = map_reduce(ctx, digit_counts, paths, add_counts, f"cut-pass-{bits // DIGIT_BITS}", column=column,
                          prefix=prefix, bits=bits) or {}
        if need is None:
            scored = sum(hist.values())
            need = round(keep_top * scored)
            if need == 0:
                return {"scored": scored, "threshold": None, "threshold_tie_id": None, "kept": 0}
        for digit in sorted(hist, reverse=True):  # from the best scores down
            if need <= hist[digit]:
                break
            need -= hist[digit]
        prefix, bits = (prefix << DIGIT_BITS) | digit, bits + DIGIT_BITS
        if hist[digit] <= COLLECT_LIMIT or bits == 64:
            break
    pool = [c for part in ctx.map(candidates, paths, "cut-candidates", column=column, prefix=prefix, bits=bits)
            for c in part]
    pool.sort(key=lambda c: (-c[0], c[1]))
    key, cut_id = pool[need - 1]
    tie = any(k == key for k, _ in pool[need:])  # a document with the same score is left out
    return {"scored": scored, "threshold": key_to_score(key), "threshold_tie_id": cut_id if tie else None,
            "kept": round(keep_top * scored)}


# -- applying the rule -----------------------------------------------------------------------


def keep_mask(table: pa.Table, column: str, rule: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(keep, scored) boolean masks of the rows of `table` under `rule`."""
    scores = table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
    scored = ~np.isnan(scores)
    if rule.get("keep_none"):
        return np.zeros(len(scores), dtype=bool), scored
    if rule["alpha"] is not None:
        u = np.array([unit_hash("pareto", rule["seed"], i) for i in table.column("id").to_pylist()])
        draw = (1.0 - u) ** (-1.0 / rule["alpha"]) - 1.0  # inverse CDF of numpy's pareto (Lomax)
        return scored & (draw > 1.0 - np.nan_to_num(scores)), scored
    t, tie_id = rule["threshold"], rule["tie_id"]
    at = scores == t
    if tie_id is not None:
        at &= pc.less_equal(table.column("id"), tie_id).to_numpy(zero_copy_only=False)
    return scored & ((scores > t) | at), scored


def apply_part(part: str, in_dir: str, out_dir: str, column: str, rule: dict[str, Any], views: bool = False) -> dict:
    """Worker: write one part's rejected rows, its kept rows (a copy, or with `views` a view of
    the input part) and its commit record."""
    in_path = storage.join(in_dir, part)
    table = read_part(in_path)
    keep, scored = keep_mask(table, column, rule)
    reason = "select.not_sampled" if rule["alpha"] is not None else "select.below_threshold"
    reasons = np.where(scored, reason, "select.missing_score")[~keep].tolist()
    rejected = with_reason(table.filter(pa.array(~keep)), "select", reasons)
    return commit_removal(in_path, out_dir, part, table, ~keep, rejected, views)
