"""The tokenize stage end to end on real documents: megatron-core reads every shard and the
tokens decode back to the documents; shards are byte-identical across reruns and worker
counts; valid documents never reach training shards; bad params fail with the key's name; the mix
stage's mixture reaches tokenize with other stages in between."""

from __future__ import annotations

import collections
import json
import re
import types
from pathlib import Path

import pytest
import sentencepiece as spm

from pipeline.config import parse_config
from pipeline.io import read_json
from pipeline.record import Document
from pipeline.runner import Runner
from tests.tokenization.conftest import run_global, write_parts
from tokenization.manifest import load_manifest
from tokenization.stage import Tokenize, TokenizeParams


def tokenize(params: dict, input_dir: Path, out_dir: Path, client, seed: int = 0) -> tuple[dict, object]:
    return run_global(Tokenize(TokenizeParams.model_validate(params)), input_dir, out_dir, client, seed)


def shard_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.suffix in (".bin", ".idx") or p.name.endswith(".docs.parquet")}


@pytest.fixture(scope="module")
def input_dir(shared_docs, tmp_path_factory) -> Path:
    docs = shared_docs + [Document(id="empty/1", text="", source="x", domain="general")]
    return write_parts(tmp_path_factory.mktemp("input"), docs, per_part=70)


@pytest.fixture(scope="module")
def tokenized(input_dir, small_model, client2, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tok") / "01-tokenize"
    extra, _stats = tokenize({"model": str(small_model), "max_shard_tokens": 20000, "valid_fraction": 0.05},
                             input_dir, out, client2)
    return out, extra


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")  # megatron-core without Apex/TE
def test_megatron_core_reads_every_shard_and_tokens_decode_to_the_documents(tokenized, shared_docs):
    from megatron.core.datasets.indexed_dataset import IndexedDataset as MegatronDataset

    out, _ = tokenized
    manifest = load_manifest(out)
    manifest.verify()
    sp = spm.SentencePieceProcessor(model_file=str(manifest.tokenizer_path))
    decoded: collections.Counter = collections.Counter()
    for domain in manifest.domains:
        entry = manifest.manifest.domains[domain]
        for shard in entry.shards + [entry.valid]:
            ds = MegatronDataset(str(out / shard.prefix))
            assert len(ds) == shard.documents
            for i in range(len(ds)):
                tokens = ds[i].tolist()
                assert tokens[-1] == manifest.manifest.eos_id and manifest.manifest.eos_id not in tokens[:-1]
                decoded[(domain, sp.decode(tokens[:-1]))] += 1
    # identity normalisation + byte fallback: every document comes back exactly, once.
    assert decoded == collections.Counter((d.domain, d.text) for d in shared_docs)


def test_docs_sidecar_names_the_document_of_every_sequence(tokenized, shared_docs):
    """`<prefix>.docs.parquet`: row i is sequence i, its document's id and its token span."""
    import pyarrow.parquet as pq

    from tokenization.indexed import IndexedDataset

    out, _ = tokenized
    manifest = load_manifest(out)
    sp = spm.SentencePieceProcessor(model_file=str(manifest.tokenizer_path))
    texts = {d.id: d.text for d in shared_docs}
    for domain in manifest.domains:
        entry = manifest.manifest.domains[domain]
        for shard in entry.shards + [entry.valid]:
            ds = IndexedDataset(str(out / shard.prefix))
            side = pq.read_table(out / f"{shard.prefix}.docs.parquet").to_pylist()
            assert [r["sequence"] for r in side] == list(range(len(ds)))
            for row in side:
                tokens = ds[row["sequence"]].tolist()
                assert row["tokens"] == len(tokens) and row["original_id"] == row["id"] and row["epoch"] == 0
                assert sp.decode(tokens[:-1]) == texts[row["id"]]
            assert side[-1]["token_offset"] + side[-1]["tokens"] == shard.tokens


def test_manifest_follows_the_contract(tokenized):
    out, extra = tokenized
    raw = read_json(out / "manifest.json")
    assert raw["format"] == "megatron-indexed" and raw["format_version"] == 1
    assert raw["dtype"] == "uint16" and raw["vocab_size"] == 1000 and raw["eos_id"] == 2
    assert set(raw["domains"]) == {"financial", "general"}
    fin = raw["domains"]["financial"]
    # 300 financial documents: 5% (15) held out, the rest in shards of <= 20000 tokens.
    assert fin["valid"]["documents"] == 15 and fin["documents"] == 285
    assert len(fin["shards"]) > 1 and all(s["tokens"] <= 20000 for s in fin["shards"])
    assert fin["shards"][0]["prefix"] == "financial/shard-00000"
    # no mix stage ran: weights are the shares of tokens written
    total = sum(d["tokens"] for d in raw["domains"].values())
    assert raw["mixture"]["financial"] == pytest.approx(fin["tokens"] / total, abs=1e-6)
    assert extra["shards"]["domains"]["financial"]["valid_documents"] == 15
    assert (out / "tokenizer.model").read_bytes() == Path(raw["tokenizer"]["path"]).read_bytes()
    assert not (out / "_work").exists()


def test_empty_documents_are_rejected_with_their_reason(tokenized):
    import pyarrow.parquet as pq

    out, _ = tokenized
    rejected = pq.read_table(out / "rejected").to_pylist()
    assert [(r["id"], r["stage"], r["reason"]) for r in rejected] == [("empty/1", "tokenize", "tokenize.empty_text")]


def test_rerun_and_one_worker_give_byte_identical_shards(tokenized, input_dir, small_model, client1, tmp_path):
    out, _ = tokenized
    params = {"model": str(small_model), "max_shard_tokens": 20000, "valid_fraction": 0.05}
    again = tmp_path / "again"
    tokenize(params, input_dir, again, client1)
    assert shard_bytes(again) == shard_bytes(out) and len(shard_bytes(out)) >= 6
    first, second = (json.loads((d / "manifest.json").read_text()) for d in (out, again))
    first["tokenizer"].pop("path"), second["tokenizer"].pop("path")
    assert first == second


def test_valid_documents_and_their_mix_copies_stay_out_of_training(small_model, client2, tmp_path):
    texts = [f"Document number {i} talks about rates and bonds. " * 5 for i in range(40)]
    docs = []
    for i, text in enumerate(texts):
        for epoch in range(2):  # the mix stage's copies: same text, `#epoch1` id, original id in metadata
            doc_id = f"d{i}" + (f"#epoch{epoch}" if epoch else "")
            docs.append(Document(id=doc_id, text=text, domain="financial", source="s",
                                 metadata={"mix": {"original_id": f"d{i}", "epoch": epoch, "rank": epoch * 40 + i}}))
    write_parts(tmp_path / "in", docs, per_part=25)
    _extra, stats = tokenize({"model": str(small_model), "valid_fraction": 0.1}, tmp_path / "in", tmp_path / "out",
                             client2)
    manifest = load_manifest(tmp_path / "out")
    sp = spm.SentencePieceProcessor(model_file=str(small_model))
    valid = {sp.decode(manifest.open_valid("financial")[i][:-1].tolist()) for i in range(4)}
    train = {sp.decode(ds[i][:-1].tolist()) for ds in manifest.open_shards("financial") for i in range(len(ds))}
    assert len(valid) == 4 and not valid & train and len(train) == 36
    assert stats.rejected == {"tokenize.copy_of_valid_document": 4}


def test_in_run_training_is_deterministic(input_dir, client2, tmp_path):
    params = {"train": {"vocab_size": 600, "max_sample_bytes": 300_000}}
    extra_a, _ = tokenize(params, input_dir, tmp_path / "a", client2)
    extra_b, _ = tokenize(params, input_dir, tmp_path / "b", client2)
    assert extra_a["tokenizer"]["sha256"] == extra_b["tokenizer"]["sha256"]
    assert extra_a["tokenizer"]["vocab_size"] == 600 and extra_a["tokenizer"]["model_type"] == "bpe"
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")


def test_params_need_exactly_one_tokenizer():
    with pytest.raises(ValueError, match="exactly one of `model`"):
        TokenizeParams.model_validate({})
    with pytest.raises(ValueError, match="exactly one of `model`"):
        TokenizeParams.model_validate({"model": "a.model", "train": {"vocab_size": 1000}})
    with pytest.raises(ValueError, match=re.escape("tokenize.model: 'missing.model' does not exist")):
        Tokenize(TokenizeParams(model="missing.model")).check()


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_int32_shards_for_vocabularies_beyond_uint16(input_dir, small_model, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset as MegatronDataset

    from tokenization.encode import encode_part
    from tokenization.indexed import token_dtype
    from tokenization.stage import write_shard

    assert token_dtype(65536).__name__ == "uint16" and token_dtype(131072).__name__ == "int32"
    part = sorted(input_dir.glob("part-*.parquet"))[0]
    docs = encode_part(str(part), str(tmp_path / "work"), str(small_model), "", "int32").to_pylist()
    financial = [d for d in docs if d["domain"] == "financial" and d["tokens"]]
    n_docs, n_tokens = len(financial), sum(d["tokens"] for d in financial)
    assert n_docs and [d["index"] for d in financial] == list(range(n_docs))
    plan = {"prefix": "financial/shard-00000", "domain": "financial", "runs": [(part.stem, 0, n_docs)],
            "documents": n_docs, "tokens": n_tokens}
    write_shard(plan, str(tmp_path / "work"), str(tmp_path / "out"), "int32")
    ds = MegatronDataset(str(tmp_path / "out" / "financial" / "shard-00000"))
    assert ds.index.dtype.__name__ == "int32" and len(ds) == n_docs
    assert sum(len(ds[i]) for i in range(len(ds))) == n_tokens


def test_leftovers_of_a_killed_run_with_another_model_are_not_reused(tokenized, input_dir, small_model, client2,
                                                                     tmp_path):
    out, _ = tokenized
    stale = tmp_path / "resumed" / "_work"
    (stale / "part-00000").mkdir(parents=True)
    (stale / "tokenizer.sha256").write_text("0" * 64)
    (stale / "part-00000" / "docs.parquet").write_bytes(b"not the real thing")
    tokenize({"model": str(small_model), "max_shard_tokens": 20000, "valid_fraction": 0.05},
             input_dir, tmp_path / "resumed", client2)
    assert shard_bytes(tmp_path / "resumed") == shard_bytes(out)


def run_stages(stages: list, docs: list[Document], small_model, client, out: Path) -> tuple[dict, dict]:
    """A run of `stages` ending in tokenize over `docs` (one jsonl input per domain): the
    shard manifest and tokenize's own `_manifest.json`."""
    inputs = []
    for domain in ("financial", "general"):
        path = out.parent / f"{domain}.jsonl"  # the same files for every run: document ids come from them
        path.write_text("".join(json.dumps({"text": d.text}) + "\n" for d in docs if d.domain == domain))
        inputs.append({"path": str(path), "format": "jsonl", "source": domain, "domain": domain})
    tokenize = {"tokenize": {"model": str(small_model), "max_shard_tokens": 20000, "valid_fraction": 0.05}}
    config = parse_config({"output": str(out), "inputs": inputs, "stages": [*stages, tokenize]})
    Runner(config, client, progress=False, guards=False).run()  # a few long documents miss the shares a bit
    folder = out / f"{len(stages) + 1:02d}-tokenize"
    return read_json(folder / "manifest.json"), read_json(folder / "_manifest.json")


def test_the_mixture_reaches_tokenize_with_a_stage_in_between(shared_docs, small_model, client2, tmp_path):
    docs = [d for d in shared_docs if d.domain == "financial"][:80] + [d for d in shared_docs if d.domain == "general"]
    mix = {"mix": {"targets": {"financial": 0.7, "general": 0.3}}}
    direct, direct_stage = run_stages([mix], docs, small_model, client2, tmp_path / "direct")
    between, between_stage = run_stages([mix, {"min_chars": {"min_chars": 1}}], docs, small_model, client2,
                                        tmp_path / "between")
    assert direct["mixture"] == between["mixture"] == {"financial": 0.7, "general": 0.3}
    assert between_stage["mixture_correction"] == direct_stage["mixture_correction"] != {}
    assert between["domains"] == direct["domains"]
    # the default `auto` without a mix stage: weights are the shares of tokens written, as before
    plain, plain_stage = run_stages([{"min_chars": {"min_chars": 1}}], docs, small_model, client2, tmp_path / "plain")
    total = sum(d["tokens"] for d in plain["domains"].values())
    assert plain["mixture"] == {d: round(e["tokens"] / total, 6) for d, e in plain["domains"].items()}
    assert plain_stage["mixture_correction"] == {} and "mixture" not in plain_stage["params"]


def test_mixture_none_ignores_a_mix_and_required_without_one_fails_outside_the_runner_too(tmp_path):
    (tmp_path / "_manifest.json").write_text(json.dumps({"mixture": {"targets": {"a": 1.0}}}))
    ran_mix = types.SimpleNamespace(artifacts={"mixture": str(tmp_path)})

    def stage(mixture: str) -> Tokenize:
        return Tokenize(TokenizeParams(model="m.model", mixture=mixture))

    assert stage("auto")._mixture(ran_mix) == {"targets": {"a": 1.0}}
    assert stage("none")._mixture(ran_mix) is None
    with pytest.raises(ValueError, match=r"^tokenize\.mixture: required, but no mix stage ran before tokenize$"):
        stage("required")._mixture(types.SimpleNamespace(artifacts={}))  # no config check outside the runner
