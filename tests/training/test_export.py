"""`thresher export-hf`: a trained run loads in transformers as a LlamaForCausalLM whose logits
are thresher's, and its tokenizer gives the sentencepiece model's ids."""

from __future__ import annotations

import gzip
import json

import pytest
import sentencepiece as spm
import torch

from pipeline.cli import main
from tests.conftest import shared_path
from tests.pipeline import test_s3
from tests.training.test_train import SMALL, TINY
from training.export import rotate_half_rows
from training.run import TrainedRun

server, fs = test_s3.server, test_s3.fs  # moto's S3 server and an s3fs client, as fixtures here

TEXTS = ["The company reported a net profit of $1.2 billion, up 14% from a year earlier.",
         "  Leading spaces, tabs\tand\nnew lines; Ünïcödé — “quotes” and 日本語 text.", "", "x"]


@pytest.fixture(scope="module")
def exported(manifest_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    sets = [f"data.manifest={manifest_path}", *SMALL, "train.steps=4", "checkpoint.every=4", "eval.every=4",
            "model.n_kv_heads=2"]  # grouped-query attention: k_proj has fewer heads than q_proj
    assert main(["train", str(TINY), "--output", str(root / "run"), *(f"--set={s}" for s in sets)]) == 0
    assert main(["export-hf", str(root / "run"), "--output", str(root / "hf")]) == 0
    return root / "run", root / "hf"


def test_rotate_half_rows_moves_each_pair_to_the_two_halves():
    w = torch.arange(8.0).repeat_interleave(3).view(8, 3)  # 2 heads of 4 dims: rows 0..7
    assert rotate_half_rows(w, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.slow
def test_transformers_computes_thresher_s_logits(exported):
    from transformers import AutoModelForCausalLM

    run, hf = exported
    model, step_dir = TrainedRun(run).load_model()
    theirs = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32).eval()
    assert type(theirs).__name__ == "LlamaForCausalLM"
    assert theirs.config.num_key_value_heads == 2 and theirs.config.num_attention_heads == 4
    tokens = torch.randint(0, model.cfg.vocab_size, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, got = model(tokens), theirs(tokens).logits
    assert torch.allclose(ours, got, atol=1e-4, rtol=1e-4), (ours - got).abs().max()
    record = json.loads((hf / "thresher_export.json").read_text())
    assert record["step"] == 4 and record["checkpoint"] == str(step_dir)
    assert record["parameters"] == sum(p.numel() for p in theirs.parameters())


@pytest.mark.slow
def test_the_tokenizer_gives_the_sentencepiece_ids(exported):
    from transformers import AutoTokenizer

    run, hf = exported
    sp = spm.SentencePieceProcessor(model_file=str(TrainedRun(run).tokenizer_path))
    tokenizer = AutoTokenizer.from_pretrained(hf)
    assert tokenizer.eos_token_id == sp.eos_id() == 2 and tokenizer.bos_token_id == 1
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == sp.encode(text), text
        assert tokenizer.decode(sp.encode(text)) == sp.decode(sp.encode(text)), text
    sample = next(shared_path("web_text_cc2019_sample").glob("*.jsonl.gz"))
    real = [json.loads(line)["text"] for line in gzip.open(sample, "rt")][:300]
    assert sum(len(text) for text in real) > 500_000  # web pages: every script, markup left-over and space run
    assert [tokenizer(text)["input_ids"] for text in real] == [sp.encode(text) for text in real]
    # The one difference (transformers' convention): a literal special-token string is that token.
    assert 2 in tokenizer("a </s> b")["input_ids"] and 2 not in sp.encode("a </s> b")


def test_an_existing_output_is_not_overwritten(exported, capsys):
    run, hf = exported
    assert main(["export-hf", str(run), "--output", str(hf)]) == 2
    assert "--output: " in capsys.readouterr().err


@pytest.mark.parametrize("normalization", ["identity", "nmt_nfkc"])
def test_a_tokenizer_that_cannot_be_rebuilt_fails_the_export(normalization):
    """NFKC sentencepiece models collapse whitespace and fold characters, which the exported
    tokenizer.json does not: the export must refuse them rather than write a tokenizer that differs."""
    import io

    from training.export import hf_tokenizer

    sample = next(shared_path("web_text_cc2019_sample").glob("*.jsonl.gz"))
    texts = [json.loads(line)["text"] for line in gzip.open(sample, "rt")][:200]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=2000,
                                   model_type="bpe", byte_fallback=True, normalization_rule_name=normalization,
                                   remove_extra_whitespaces=normalization != "identity", character_coverage=0.9995,
                                   allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    if normalization == "identity":
        assert hf_tokenizer(sp).encode("a  b", add_special_tokens=False).ids == sp.encode("a  b")
    else:
        with pytest.raises(ValueError, match="the tokenizer cannot be reproduced for transformers"):
            hf_tokenizer(sp)


@pytest.mark.slow
def test_an_export_of_a_run_on_s3_to_s3_has_the_local_export_s_bytes(exported, manifest_path, server, fs):
    """The run copied to S3 (config.yaml naming its shards there, and checkpoints) exported to S3."""
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO

    run, hf = exported
    fs.mkdir("exports")
    fs.put(str(manifest_path.parent), "exports/shards/01-tokenize", recursive=True)
    fs.put(str(run / "checkpoints"), "exports/run/checkpoints", recursive=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["manifest"] = "s3://exports/shards"
    fs.pipe_file("exports/run/config.yaml", yaml.safe_dump(config).encode())
    command = [sys.executable, "-m", "pipeline.cli", "export-hf", "s3://exports/run", "--output", "s3://exports/hf"]
    done = subprocess.run(command, cwd=REPO, env=server, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    fs.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls("exports/hf"))
    assert names == sorted(p.name for p in hf.iterdir())
    for name in names:
        if name != "thresher_export.json":  # it names the run and checkpoint it came from
            assert fs.cat_file(f"exports/hf/{name}") == (hf / name).read_bytes(), name
    record = json.loads(fs.cat_file("exports/hf/thresher_export.json"))
    assert record["run"] == "s3://exports/run" and record["checkpoint"] == "s3://exports/run/checkpoints/step-000004"
