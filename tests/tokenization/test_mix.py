"""The mix stage: token shares per domain and source, whole epochs plus a seeded remainder,
repeated copies with their own ids, rejected rows with reasons, warnings when the epoch cap
keeps a target out of reach, and the two-domain preset over ../shared/data end to end."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.io import read_json
from pipeline.record import Document, table_to_documents
from pipeline.runner import Runner
from tests.conftest import REPO, shared_path
from tests.tokenization.conftest import run_global, shared_docs, small_model, write_parts  # noqa: F401 (fixtures)
from tokenization.mix import Mix, MixParams, _cut, allocate, leaf_targets
from tokenization.mix_parts import _copies


def corpus() -> list[Document]:
    fin = [Document(id=f"f{i}", text="x" * 400, source="news", domain="financial") for i in range(20)]
    gen = [Document(id=f"g{i}", text="y" * 100, source="wiki", domain="general") for i in range(10)]
    odd = [Document(id="nodomain", text="z" * 50, source="wiki"),
           Document(id="other", text="z" * 50, source="wiki", domain="legal"),
           Document(id="empty", text="", source="wiki", domain="general")]
    return fin[:10] + gen[:5] + odd + fin[10:] + gen[5:]


def mix(params: dict, tmp_path, client, docs=None, per_part: int = 8) -> tuple[dict, object, list[Document]]:
    write_parts(tmp_path / "in", docs or corpus(), per_part=per_part)
    extra, stats = run_global(Mix(MixParams.model_validate(params)), tmp_path / "in", tmp_path / "out", client)
    out = [d for p in sorted((tmp_path / "out").glob("part-*.parquet")) for d in table_to_documents(pq.read_table(p))]
    return extra["mixture"], stats, out


def test_targets_must_add_up_to_one():
    with pytest.raises(ValueError, match=re.escape("shares add up to 1.1000; they must add up to 1")):
        MixParams(targets={"financial": 0.6, "general": 0.5})
    with pytest.raises(ValueError, match=r"general: shares must be in \(0, 1\]"):
        MixParams(targets={"financial": 1.0, "general": {}})
    domains, nested = leaf_targets({"financial": {"web": 0.4201, "news": 0.0899}, "general": 0.49})
    assert domains == pytest.approx({"financial": 0.51, "general": 0.49}) and nested["financial"]["web"] == 0.4201


def test_allocate_uses_everything_and_lowers_the_total_at_the_epoch_cap():
    available, targets = {"f": 1000, "g": 200}, {"f": 0.5, "g": 0.5}
    total, epochs = allocate(available, targets, None, max_epochs=10)
    assert total == 2000 and epochs == {"f": 1.0, "g": 5.0}  # every document once, g repeated
    total, epochs = allocate(available, targets, None, max_epochs=4)
    assert total == 1600 and epochs == {"f": 0.8, "g": 4.0}  # cap: f down-sampled to keep the ratio
    total, epochs = allocate(available, targets, 3000, max_epochs=4)
    assert epochs == {"f": 1.5, "g": 4.0}  # a budget: g is capped (the report warns)


def test_whole_epochs_plus_a_seeded_remainder_in_one_priority_order(tmp_path, client):
    docs = [Document(id=f"d{i}", text="x" * 40, source="s", domain="financial") for i in range(10)]
    docs += [Document(id=f"e{i}", text="y" * 40, source="s", domain="general") for i in range(4)]
    # 100 vs 40 tokens at 50/50 without a cap: general needs 2.5 epochs
    report, _, out = mix({"targets": {"financial": 0.5, "general": 0.5}, "max_epochs": 2.5}, tmp_path, client, docs)
    assert report["domains"]["general"]["epochs"] == 2.5
    general = [d for d in out if d.domain == "general"]
    assert len(general) == 10 and sorted(np.bincount([d.metadata["mix"]["epoch"] for d in general])) == [2, 4, 4]
    ranks = sorted((d.metadata["mix"]["rank"], d.metadata["mix"]["epoch"]) for d in general)
    assert [e for _, e in ranks] == sorted(e for _, e in ranks)  # a later epoch always ranks lower
    assert len({r for r, _ in ranks}) == 10  # one priority order over all copies
    _, _, again = mix({"targets": {"financial": 0.5, "general": 0.5}, "max_epochs": 2.5}, tmp_path / "b", client,
                      docs)
    assert [(d.id, d.metadata) for d in again] == [(d.id, d.metadata) for d in out]


def test_the_copies_do_not_depend_on_how_the_documents_are_split_into_parts(tmp_path, client):
    """Parts that hold several (domain, source) keys, as merged parts do: a cut's row is a
    position among all of its part's rows, and a cut left out stays out."""
    work = pa.table({"key": ["A", "B", "B", "B"], "hkey": np.array([9, 5, 7, 3], dtype=np.uint64)})
    plans = {"A": {"full": 1, "take": "none", "cut": None},
             "B": {"full": 0, "take": "cut", "cut": (7, 0, 2, False)}}  # B's sample stops before row 2
    rows, epochs, _ = _copies(work, 0, plans)
    assert rows.tolist() == [0, 1, 3] and epochs.tolist() == [0, 0, 0]
    plans["B"]["cut"] = (7, 0, 2, True)
    assert _copies(work, 0, plans)[0].tolist() == [0, 1, 2, 3]
    docs = [Document(id=f"d{i}", text="x" * (40 + 4 * (i % 5)), source="s", domain=("financial", "general")[i % 2])
            for i in range(30)]
    params = {"targets": {"financial": 0.3, "general": 0.7}, "max_epochs": 3}
    copies = {}
    for per_part in (1, 7, 30):
        _, _, out = mix(params, tmp_path / str(per_part), client, docs, per_part=per_part)
        copies[per_part] = sorted((d.id, d.metadata["mix"]["epoch"]) for d in out)
    assert copies[7] == copies[1] == copies[30]
    assert 0 < sum(epoch == 2 for _, epoch in copies[1]) < 15  # general: 2 epochs and a sampled third


def test_the_remainder_takes_the_closest_whole_documents():
    # candidates (sampling key, part, row, tokens): in key order the tokens are 5, 50, 5, 5
    pool = np.array([[1, 3, 2, 4], [0, 0, 0, 0], [0, 2, 1, 3], [5, 5, 50, 5]], dtype=np.uint64)
    assert _cut(pool, 13) == {"take": "cut", "cut": (2, 0, 1, False)}  # 13 of 65 tokens: only the first
    assert _cut(pool, 40) == {"take": "cut", "cut": (2, 0, 1, True)}  # 55 is closer to 40 than 5 is


def test_repeats_the_scarce_domain_and_down_samples_to_keep_the_ratio(tmp_path, client):
    report, stats, out = mix({"targets": {"financial": 0.5, "general": 0.5}, "max_epochs": 4}, tmp_path, client)
    fin, gen = report["domains"]["financial"], report["domains"]["general"]
    # estimate: 4 bytes/token -> financial 2000, general 250 tokens; general needs 8 epochs > 4,
    # so the total is lowered to 2000 and financial is down-sampled to half its documents.
    assert (gen["epochs"], gen["sources"]["wiki"]["decision"], gen["documents"]) == (4.0, "repeat", 40)
    assert (fin["epochs"], fin["sources"]["news"]["decision"], fin["documents"]) == (0.5, "down-sample", 10)
    assert fin["achieved"] == gen["achieved"] == 0.5
    assert report["warnings"] == [  # the documents that no target takes: one without a domain, one "other"
        "1 document(s) have no domain and were dropped (mix.missing_domain); give their inputs a `domain:` or "
        "classify them before the mix",
        "1 document(s) have a domain that no target names and were dropped (mix.domain_not_in_targets)"]
    copies = [d for d in out if d.metadata["mix"]["original_id"] == "g3"]
    assert sorted(d.id for d in copies) == ["g3", "g3#epoch1", "g3#epoch2", "g3#epoch3"]
    assert sorted(d.metadata["mix"]["epoch"] for d in copies) == [0, 1, 2, 3]
    # parts of 8 rows: general documents are in input parts 1, 3 and 4
    assert sorted(p.name for p in (tmp_path / "out").glob("part-e003-*.parquet")) == [
        "part-e003-00001.parquet", "part-e003-00003.parquet", "part-e003-00004.parquet"]
    assert stats.rejected == {"mix.missing_domain": 1, "mix.domain_not_in_targets": 1, "mix.empty_text": 1,
                              "mix.not_sampled": 10}
    rejected = {r["id"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "rejected").to_pylist()}
    assert rejected["nodomain"] == "mix.missing_domain" and rejected["other"] == "mix.domain_not_in_targets"


def test_budget_beyond_the_epoch_cap_warns_with_the_achieved_share(tmp_path, client, capsys):
    params = {"targets": {"financial": 0.5, "general": 0.5}, "max_epochs": 2, "total_tokens": 4000}
    report, _, _ = mix(params, tmp_path, client)
    assert report["domains"]["general"]["epochs"] == 2.0 and report["domains"]["general"]["achieved"] == 0.2
    assert any("general/wiki: target 50.00% of 4000 tokens needs 8.00 epochs but max_epochs is 2; "
               "achieved 20.00% instead" in w for w in report["warnings"])
    assert "warning: domain general: target 50.00% but achieved 20.00%" in capsys.readouterr().err


def test_nested_targets_give_shares_per_source(tmp_path, client):
    docs = corpus() + [Document(id=f"w{i}", text="w" * 200, source="web", domain="financial") for i in range(10)]
    params = {"targets": {"financial": {"news": 0.3, "web": 0.2}, "general": 0.5}, "max_epochs": 10}
    report, _, _ = mix(params, tmp_path, client, docs)
    sources = report["domains"]["financial"]["sources"]
    assert sources["news"]["achieved"] == pytest.approx(0.3, abs=0.02)
    assert sources["web"]["achieved"] == pytest.approx(0.2, abs=0.02)
    assert report["source_targets"] == {"financial": {"news": 0.3, "web": 0.2}}


def test_counts_real_tokens_with_a_tokenizer(tmp_path, client, small_model):  # noqa: F811 (a fixture)
    import sentencepiece as spm

    docs = [Document(id=f"d{i}", text=f"Shares of company {i} rose {i} percent.", source="s",
                     domain="financial" if i % 2 else "general") for i in range(30)]
    report, _, _ = mix({"targets": {"financial": 0.5, "general": 0.5}, "tokenizer": str(small_model)},
                       tmp_path, client, docs)
    sp = spm.SentencePieceProcessor(model_file=str(small_model))
    fin_tokens = sum(len(sp.encode(d.text)) for d in docs if d.domain == "financial")
    assert report["token_count"] == "sentencepiece"
    assert report["domains"]["financial"]["available_tokens"] == fin_tokens


@pytest.mark.slow
def test_two_domain_preset_over_shared_data_hits_51_49(tmp_path, client):
    shared_path("financial_reuters21578", "reuters21578.jsonl.gz")
    config = load_config(REPO / "configs" / "mix-51-49.yaml", output=str(tmp_path / "run"))
    tokenize = {"train": {"vocab_size": 2000, "max_sample_bytes": 2_000_000}, "max_shard_tokens": 2_000_000}
    by_name = {spec.name: spec for spec in config.stages}  # the mix alone: the preset's web filters are not the point
    stages = [by_name["mix"], by_name["tokenize"].model_copy(update={"params": tokenize})]
    config = config.model_copy(update={"stages": stages, "inputs": [
        spec.model_copy(update={"path": str((REPO / spec.path).resolve())}) for spec in config.inputs]})
    Runner(config, client, progress=False).run()
    report = read_json(tmp_path / "run" / "01-mix" / "_manifest.json")["mixture"]
    general = report["domains"]["general"]
    assert general["sources"]["wikitext2"]["decision"] == "repeat" and 3 <= general["epochs"] <= 4
    assert report["domains"]["financial"]["epochs"] == 1.0 and report["warnings"] == []
    manifest = read_json(tmp_path / "run" / "02-tokenize" / "manifest.json")
    total = sum(d["tokens"] for d in manifest["domains"].values())
    for domain, target in (("financial", 0.51), ("general", 0.49)):  # real tokens, within 1 point
        assert manifest["domains"][domain]["tokens"] / total == pytest.approx(target, abs=0.01)
        assert manifest["mixture"][domain] == target
    correction = read_json(tmp_path / "run" / "02-tokenize" / "_manifest.json")["mixture_correction"]
    assert 2 <= correction["general"]["epochs"] <= general["epochs"]
    summary = Runner(config, client, progress=False).run()  # a rerun skips every stage, the zero-part one too
    assert summary["stages"][-1]["docs_out"] == sum(d["documents"] + d["valid"]["documents"]
                                                    for d in manifest["domains"].values())


def test_bloomberggpt_preset_parses_with_the_papers_shares():
    config = load_config(REPO / "configs" / "bloomberggpt-mix.yaml")
    params = MixParams.model_validate(config.stages[0].params)
    domains, nested = leaf_targets(params.targets)
    assert domains["financial"] == pytest.approx(0.5127) and nested["general"]["pile"] == pytest.approx(0.259)
    assert {spec.source for spec in config.inputs} == {s for v in nested.values() for s in v}


def test_a_target_domain_without_documents_warns_and_the_rest_keep_their_ratio(tmp_path, client):
    params = {"targets": {"financial": 0.4, "general": 0.4, "crypto": 0.2}, "max_epochs": 10}
    report, _, _ = mix(params, tmp_path, client)
    assert "crypto: target 20.00% of tokens but no documents; its share is 0" in report["warnings"]
    assert report["domains"]["crypto"]["tokens"] == 0
    assert report["domains"]["financial"]["achieved"] == report["domains"]["general"]["achieved"] == 0.5
