"""Planning the shards: validation documents per domain (whole mix copies), the correction
of the mix stage's estimate to exact token shares, and bounded shards in input order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tokenization import plan
from tokenization.encode import DOCS_SCHEMA, VALID_KEY_PREFIX
from tokenization.sample import doc_keys


def docs_table(rows: list[dict]) -> plan.Docs:
    defaults = {"source": "s", "epoch": 0, "rank": 0, "bytes": 10, "part": 0}
    full = []
    for i, r in enumerate(rows):
        r = {**defaults, "row": i, "index": i, **r}
        r.setdefault("original_id", r["id"])
        r["valid_key"] = int(doc_keys(0, [r["original_id"]], VALID_KEY_PREFIX)[0])
        full.append(r)
    schema = DOCS_SCHEMA.append(pa.field("part", pa.int32()))
    return plan.Docs(pa.Table.from_pylist(full, schema=schema))


def test_valid_takes_a_fraction_of_originals_and_drops_their_other_copies():
    rows = [{"id": f"f{i}", "domain": "fin", "tokens": 10} for i in range(50)]
    rows += [{"id": f"f{i}#epoch1", "original_id": f"f{i}", "epoch": 1, "rank": 50 + i, "domain": "fin", "tokens": 10}
             for i in range(50)]
    rows += [{"id": "g0", "domain": "gen", "tokens": 5}, {"id": "g1", "domain": "gen", "tokens": 5},
             {"id": "h0", "domain": "solo", "tokens": 5}, {"id": "e", "domain": "fin", "tokens": 0}]
    docs = docs_table(rows)
    plan.choose_valid(docs, fraction=0.1)
    fates = dict(zip(docs.id, docs.fate))
    valid = [i for i, f in fates.items() if f == plan.VALID]
    fin_valid = [i for i in valid if i.startswith("f")]
    assert len(fin_valid) == 5 and all("#" not in i for i in fin_valid)  # the epoch-0 copy is kept
    assert {fates[f"{i}#epoch1"] for i in fin_valid} == {plan.COPY_OF_VALID}
    assert sum(1 for i in valid if i.startswith("g")) == 1  # at least one of two documents
    assert fates["h0"] == "" and fates["e"] == plan.EMPTY  # a lone document stays in training
    docs_again = docs_table(rows)
    plan.choose_valid(docs_again, fraction=0.1)
    assert list(docs_again.fate) == list(docs.fate)


def test_trim_reaches_target_shares_dropping_highest_ranks_first():
    rows = [{"id": f"f{i}", "domain": "fin", "tokens": 100, "rank": i} for i in range(60)]
    rows += [{"id": f"g{i}", "domain": "gen", "tokens": 100, "rank": i, "source": "a" if i % 2 else "b"}
             for i in range(100)]
    docs = docs_table(rows)
    report = plan.trim_to_mixture(docs, {"fin": 0.5, "gen": 0.5}, nested=set(), seed=0)
    assert report["fin"] == {"target": 0.5, "tokens_before": 6000, "tokens_after": 6000}
    assert report["gen"]["tokens_after"] == 6000
    kept_gen = [i for i, f, d in zip(docs.id, docs.fate, docs.domain) if d == "gen" and f == ""]
    assert {int(i[1:]) for i in kept_gen} == set(range(60))  # ranks 60..99 were trimmed
    trimmed = [s for s, f in zip(docs.source, docs.fate) if f == plan.TRIMMED]
    assert trimmed.count("a") == trimmed.count("b") == 20  # each source keeps the same fraction


def test_trim_by_source_for_nested_targets():
    rows = [{"id": f"a{i}", "domain": "fin", "source": "news", "tokens": 10, "rank": i} for i in range(50)]
    rows += [{"id": f"b{i}", "domain": "fin", "source": "web", "tokens": 10, "rank": i} for i in range(50)]
    docs = docs_table(rows)
    plan.trim_to_mixture(docs, {"fin/news": 0.2, "fin/web": 0.8}, nested={"fin"}, seed=0)
    kept = [s for s, f in zip(docs.source, docs.fate) if f == ""]
    assert kept.count("web") == 50 and kept.count("news") == pytest.approx(12.5, abs=1)


def test_shards_are_bounded_and_in_input_order_with_runs():
    rows = [{"id": f"d{i}", "domain": "fin", "tokens": 30, "part": i // 4, "row": i % 4, "index": i % 4}
            for i in range(10)]
    docs = docs_table(rows)
    docs.fate[3] = plan.VALID
    plans = plan.assign_shards(docs, ["p0", "p1", "p2"], max_shard_tokens=100)
    assert [p["prefix"] for p in plans] == ["fin/shard-00000", "fin/shard-00001", "fin/shard-00002", "fin/valid-00000"]
    assert [p["documents"] for p in plans] == [3, 3, 3, 1] and all(p["tokens"] <= 100 for p in plans)
    assert plans[0]["runs"] == [("p0", 0, 3)]
    assert plans[1]["runs"] == [("p1", 0, 3)] and plans[2]["runs"] == [("p1", 3, 4), ("p2", 0, 2)]
    assert plans[3]["runs"] == [("p0", 3, 4)]
