"""Tests for the `select` stage: order-preserving keys, the exact distributed top fraction
(ties broken by id, checked against a plain sort), the manifest's cut reproducing the same
selection as a fixed threshold, Pareto sampling, and bad parameters."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster
from pydantic import ValidationError

import filters.select as select_module
from filters.select import Select, key_to_score, sort_keys
from pipeline.context import GlobalContext, StageOutput
from pipeline.record import DOCUMENT_SCHEMA


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def make_input(root, n=2000, parts=5, seed=0):
    """`parts` partitions of `n` documents; scores rounded to 2 decimals (many ties), some null."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    ids = [f"doc-{i:05d}" for i in range(n)]
    rng.shuffle(ids)
    names = []
    for p in range(parts):
        rows = [{"id": i, "text": "x" * 3, "quality_score": None if rng.random() < 0.05 else round(rng.random(), 2)}
                for i in ids[p::parts]]
        names.append(f"part-{p:05d}.parquet")
        pq.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), root / names[-1])
    return StageOutput(root, "fp", tuple(names), DOCUMENT_SCHEMA)


def run_select(client, source, out, **params):
    result = Select(Select.Params(**params)).run(GlobalContext(client, source, out, 7, progress=False))
    extra, stats = result.extra, result.stats
    kept = [r for p in sorted(out.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    rejected = [r for p in sorted((out / "rejected").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return extra["selection"], kept, rejected, stats


def test_sort_keys_preserve_order():
    values = np.array([-np.inf, -3.5, -1e-300, -0.0, 0.0, 1e-300, 0.25, 0.5, 2.0, np.inf])
    keys = sort_keys(values)
    assert np.all(np.diff(keys.astype(object)) >= 0) and keys[3] == keys[4]  # -0.0 == 0.0
    assert [key_to_score(int(k)) for k in keys[1:-1]] == [-3.5, -1e-300, 0.0, 0.0, 1e-300, 0.25, 0.5, 2.0]


@pytest.mark.parametrize("collect_limit", [200_000, 3])  # 3: forces every radix pass
def test_keep_top_is_exact_and_reproducible_by_threshold(client, tmp_path, monkeypatch, collect_limit):
    monkeypatch.setattr(select_module, "COLLECT_LIMIT", collect_limit)
    source = make_input(tmp_path / "in")
    selection, kept, rejected, stats = run_select(client, source, tmp_path / "top", keep_top=0.2)
    rows = [r for p in source.paths() for r in pq.read_table(p).to_pylist()]
    scored = [r for r in rows if r["quality_score"] is not None]
    expected = sorted(scored, key=lambda r: (-r["quality_score"], r["id"]))[: round(0.2 * len(scored))]
    assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in expected)
    assert abs(len(kept) / len(scored) - 0.2) <= 0.005 and selection["kept"] == len(kept)
    assert selection["threshold"] == expected[-1]["quality_score"]
    assert selection["threshold_tie_id"] == expected[-1]["id"]  # scores tie at 2 decimals
    assert stats.docs_in == 2000 and stats.docs_out == len(kept)
    assert stats.rejected["select.missing_score"] == len(rows) - len(scored)
    assert stats.rejected["select.below_threshold"] == len(scored) - len(kept) == len(rejected) - stats.rejected[
        "select.missing_score"]
    assert {r["reason"] for r in rejected} == {"select.missing_score", "select.below_threshold"}
    _, kept_again, _, _ = run_select(client, source, tmp_path / "fixed", threshold=selection["threshold"],
                                         threshold_tie_id=selection["threshold_tie_id"])
    assert [r["id"] for r in kept_again] == [r["id"] for r in kept]
    _, kept_loose, _, _ = run_select(client, source, tmp_path / "loose", threshold=selection["threshold"])
    assert len(kept_loose) > len(kept)  # without the tie id, every document at the cut is kept


def test_pareto_sampling_is_seeded_and_prefers_high_scores(client, tmp_path):
    source = make_input(tmp_path / "in", n=1000)
    _, kept, rejected, _ = run_select(client, source, tmp_path / "a", alpha=3.0)
    _, kept_b, _, _ = run_select(client, source, tmp_path / "b", alpha=3.0)
    assert [r["id"] for r in kept] == [r["id"] for r in kept_b]
    mean_kept = np.mean([r["quality_score"] for r in kept])
    dropped = [r["quality_score"] for r in rejected if r["reason"] == "select.not_sampled"]
    assert mean_kept > np.mean(dropped) and 0 < len(kept) < 1000


def test_params_and_column_errors(client, tmp_path):
    with pytest.raises(ValidationError, match="exactly one of threshold, keep_top, alpha"):
        Select.Params(threshold=0.5, keep_top=0.1)
    with pytest.raises(ValidationError, match="threshold_tie_id is only valid with threshold"):
        Select.Params(keep_top=0.1, threshold_tie_id="x")
    with pytest.raises(ValidationError):
        Select.Params(keep_top=1.5)
    source = make_input(tmp_path / "in", n=10, parts=1)
    with pytest.raises(ValueError, match="'nope' is not a column"):
        run_select(client, source, tmp_path / "o", column="nope", keep_top=0.5)
