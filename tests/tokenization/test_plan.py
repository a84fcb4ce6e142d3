"""Planning the shards on the workers: validation documents per domain (whole mix copies), the
correction of the mix stage's estimate to exact token shares, bounded shards in input order,
and, on random tables, exactly the decisions of the one-process reference planner."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from pipeline import aggregate, storage
from pipeline.io import write_parquet
from tests.tokenization import oracle_plan
from tokenization import plan
from tokenization.encode import DOCS_SCHEMA, VALID_KEY_PREFIX
from tokenization.sample import doc_keys


def write_parts(work, rows: list[dict], n_parts: int) -> tuple[list[str], pa.Table]:
    """Each part's docs.parquet under `work` (rows go to their `part`, 0 by default); return
    the stems and the whole table in part order with its `part` column (the oracle's input)."""
    defaults = {"source": "s", "epoch": 0, "rank": 0, "bytes": 10, "part": 0}
    by_part: list[list[dict]] = [[] for _ in range(n_parts)]
    for r in rows:
        r = {**defaults, **r}
        r.setdefault("original_id", r["id"])
        r.setdefault("valid_key", int(doc_keys(0, [r["original_id"]], VALID_KEY_PREFIX)[0]))
        r.setdefault("trim_key", int(doc_keys(0, [r["id"]])[0]))
        by_part[r["part"]].append(r)
    stems, tables = [], []
    for i, part in enumerate(by_part):
        for position, r in enumerate(part):
            r.setdefault("row", position)
            r.setdefault("index", position)
        table = pa.Table.from_pylist(part, schema=DOCS_SCHEMA)
        stems.append(f"part-{i:05d}")
        write_parquet(table, storage.join(str(work), stems[-1], "docs.parquet"))
        tables.append(table.append_column("part", pa.array(np.full(len(part), i, dtype=np.int32))))
    return stems, pa.concat_tables(tables)


def run_plan(client, work, stems, fraction=0.1, targets=None, nested=(), max_shard_tokens=10**9):
    ctx = SimpleNamespace(client=client, name="tokenize", progress=False)
    planned = plan.plan(ctx, str(work), stems, fraction, targets or {}, set(nested), max_shard_tokens)
    fates = [storage.read_table(storage.join(str(work), s, "fate.parquet"))["fate"].to_pylist() for s in stems]
    return planned, fates


def fates_by_id(table: pa.Table, fates: list[list[str]]) -> dict[str, str]:
    return dict(zip(table["id"].to_pylist(), [f for part in fates for f in part]))


def test_valid_takes_a_fraction_of_originals_and_drops_their_other_copies(client, tmp_path):
    rows = [{"id": f"f{i}", "domain": "fin", "tokens": 10} for i in range(50)]
    rows += [{"id": f"f{i}#epoch1", "original_id": f"f{i}", "epoch": 1, "rank": 50 + i, "domain": "fin", "tokens": 10,
              "part": 1} for i in range(50)]
    rows += [{"id": "g0", "domain": "gen", "tokens": 5}, {"id": "g1", "domain": "gen", "tokens": 5},
             {"id": "h0", "domain": "solo", "tokens": 5}, {"id": "e", "domain": "fin", "tokens": 0}]
    stems, table = write_parts(tmp_path, rows, 2)
    planned, fates = run_plan(client, tmp_path, stems)
    by_id = fates_by_id(table, fates)
    valid = [i for i, f in by_id.items() if f == plan.VALID]
    fin_valid = [i for i in valid if i.startswith("f")]
    assert len(fin_valid) == 5 and all("#" not in i for i in fin_valid)  # the epoch-0 copy is kept
    assert {by_id[f"{i}#epoch1"] for i in fin_valid} == {plan.COPY_OF_VALID}
    assert sum(1 for i in valid if i.startswith("g")) == 1  # at least one of two documents
    assert by_id["h0"] == "" and by_id["e"] == plan.EMPTY  # a lone document stays in training
    assert planned.stats.rejected == {"tokenize.copy_of_valid_document": 5, "tokenize.empty_text": 1}
    assert planned.rejected_parts == [0, 1]
    again, fates_again = run_plan(client, tmp_path, stems)
    assert fates_again == fates and again.plans == planned.plans


def test_trim_reaches_target_shares_dropping_highest_ranks_first(client, tmp_path):
    rows = [{"id": f"f{i}", "domain": "fin", "tokens": 100, "rank": i} for i in range(60)]
    rows += [{"id": f"g{i}", "domain": "gen", "tokens": 100, "rank": i, "source": "a" if i % 2 else "b",
              "part": i % 3} for i in range(100)]
    rows[0]["valid_key"] = rows[60]["valid_key"] = 0  # f0 and g0 (source b) are the validation documents
    stems, table = write_parts(tmp_path, rows, 3)
    planned, fates = run_plan(client, tmp_path, stems, fraction=0.0, targets={"fin": 0.5, "gen": 0.5})
    by_id = fates_by_id(table, fates)
    # validation took one original per domain; the trim then evens out the training tokens
    report = planned.correction
    assert report["fin"] == {"target": 0.5, "tokens_before": 5900, "tokens_after": 5900}
    assert report["gen"]["tokens_after"] == 5900
    trimmed = sorted(int(i[1:]) for i, f in by_id.items() if f == plan.TRIMMED)
    assert len(trimmed) == 40 and min(trimmed) >= 59  # the highest ranks went first
    sources = dict(zip(table["id"].to_pylist(), table["source"].to_pylist()))
    assert [sources[f"g{i}"] for i in trimmed].count("a") == 20  # each source keeps the same fraction


def test_trim_by_source_for_nested_targets(client, tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "COLLECT_LIMIT", 4)  # several radix passes
    rows = [{"id": f"a{i}", "domain": "fin", "source": "news", "tokens": 10, "rank": (1 << 40) | i}
            for i in range(50)]
    rows += [{"id": f"b{i}", "domain": "fin", "source": "web", "tokens": 10, "rank": i, "part": 1} for i in range(50)]
    rows[50]["valid_key"] = 0  # b0 is the validation document
    stems, table = write_parts(tmp_path, rows, 2)
    _, fates = run_plan(client, tmp_path, stems, fraction=0.0, targets={"fin/news": 0.2, "fin/web": 0.8},
                        nested={"fin"})
    kept = [s for s, f in zip(table["source"].to_pylist(), [f for p in fates for f in p]) if f == ""]
    assert kept.count("web") == 49 and kept.count("news") == pytest.approx(12.25, abs=1)


def test_shards_are_bounded_and_in_input_order_with_runs(client, tmp_path):
    rows = [{"id": f"d{i}", "domain": "fin", "tokens": 30, "part": i // 4, "valid_key": 1 + i} for i in range(10)]
    rows += [{"id": "big", "domain": "fin", "tokens": 250, "part": 2, "valid_key": 99},
             {"id": "g", "domain": "gen", "tokens": 5, "index": 0}]  # d0, the smallest key, is the validation one
    stems, _ = write_parts(tmp_path, rows, 3)
    planned, _ = run_plan(client, tmp_path, stems, fraction=0.0, max_shard_tokens=100)
    plans = planned.plans
    assert [p["prefix"] for p in plans] == ["fin/shard-00000", "fin/shard-00001", "fin/shard-00002",
                                            "fin/shard-00003", "fin/valid-00000", "gen/shard-00000"]
    assert [p["documents"] for p in plans] == [3, 3, 3, 1, 1, 1]  # a document over the bound is a shard
    assert [p["runs"] for p in plans] == [
        [("part-00000", 1, 4)], [("part-00001", 0, 3)], [("part-00001", 3, 4), ("part-00002", 0, 2)],
        [("part-00002", 2, 3)], [("part-00000", 0, 1)], [("part-00000", 0, 1)]]
    assert [p["tokens"] for p in plans] == [90, 90, 90, 250, 30, 5]
    assert [p["fate"] for p in plans] == ["", "", "", "", plan.VALID, ""]


# -- against the reference planner ----------------------------------------------------------------

def random_rows(rng: np.random.Generator, n_parts: int, ties: bool) -> list[dict]:
    """Mix-like copies of random originals over random parts (some empty), with what a real run
    can hold at the edges: empty texts, originals without their epoch-0 copy or with two,
    valid keys that collide or share a histogram bin, and ties in rank and trim_key."""
    rows = []
    empty = int(rng.integers(0, n_parts))  # one part gets no rows (unless it is the only one)
    used = [p for p in range(n_parts) if p != empty or n_parts == 1]
    for o in range(int(rng.integers(0, 80))):
        domain = str(rng.choice(["fin", "gen", "web"], p=[0.5, 0.35, 0.15]))
        source = [None, "a", "b"][int(rng.integers(0, 3))]
        tokens = 0 if rng.random() < 0.08 else int(rng.integers(1, 60))
        key = (int(rng.choice([0, 1, 0xFFFF])) << 48) | int(rng.integers(0, 1 << 48))
        key = int(rng.integers(0, 4)) if rng.random() < 0.1 else key  # colliding keys: one original
        epochs = list(range(int(rng.integers(1, 4))))
        if rng.random() < 0.1:
            epochs = epochs[1:]
        if rng.random() < 0.05:
            epochs = [0] + epochs
        for e in epochs:
            rank = int(rng.integers(0, 4)) if ties else (e << 40) | int(rng.integers(0, 1 << 40))
            trim = int(rng.integers(0, 3)) if ties else int(rng.integers(0, 1 << 63)) * 2 + 1
            rows.append({"id": f"o{o}#{len(rows)}", "original_id": f"o{o}", "domain": domain, "source": source,
                         "epoch": e, "rank": rank, "tokens": tokens, "bytes": int(rng.integers(0, 500)),
                         "valid_key": key, "trim_key": trim, "part": int(rng.choice(used))})
    rng.shuffle(rows)
    counters: dict = {}
    for r in rows:  # index: position among the part's non-empty documents of the domain
        if r["tokens"]:
            r["index"] = counters.setdefault((r["part"], r["domain"]), 0)
            counters[r["part"], r["domain"]] += 1
        else:
            r["index"] = -1
    return rows


TARGETS = [{}, {"fin": 0.5, "gen": 0.3, "web": 0.2}, {"fin": 0.7, "gen": 0.3, "other": 0.1, "web": 0.0},
           {"fin/a": 0.3, "fin/b": 0.2, "fin/None": 0.1, "gen": 0.4}]


@pytest.mark.parametrize("seed", range(16))
def test_the_distributed_plan_decides_what_the_reference_decides(client, tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(plan, "COLLECT_LIMIT", [3, 10**6][seed % 2])
    n_parts = int(rng.integers(1, 6))
    stems, table = write_parts(tmp_path, random_rows(rng, n_parts, ties=seed % 4 == 3), n_parts)
    if seed % 3 == 0:  # 6-7 Dask partitions of training rows: the shuffle goes through p2p, as at scale
        train = sum(1 for t in table["tokens"].to_pylist() if t)
        monkeypatch.setattr(aggregate, "ROWS_PER_PARTITION", max(1, train // 6))
    fraction = float(rng.choice([0.0, 0.05, 0.2, 0.5]))
    targets = TARGETS[seed % len(TARGETS)]
    nested = {"fin"} if "fin/a" in targets else set()
    max_tokens = int(rng.integers(20, 300))
    expected = oracle_plan.oracle(table, stems, fraction, targets, nested, max_tokens)
    planned, fates = run_plan(client, tmp_path, stems, fraction, targets, nested, max_tokens)
    assert fates == expected["fates"]
    assert planned.plans == expected["plans"]
    assert planned.correction == expected["correction"]
    assert planned.rejected_parts == expected["rejected_parts"]
    stats = planned.stats
    assert (stats.docs_in, stats.bytes_in, stats.docs_out, stats.bytes_out) == tuple(
        expected["stats"][k] for k in ("docs_in", "bytes_in", "docs_out", "bytes_out"))
    assert {r: [stats.rejected[r], stats.rejected_bytes[r]] for r in stats.rejected} == expected["stats"]["rejected"]
    assert {k: stats.counters.get(k, 0) for k in expected["stats"]["tokens"]} == expected["stats"]["tokens"]
