"""`thresher tokenizer train CONFIG`: writes the model, its sha256 and a summary; the same
config gives the same bytes; a bad config exits 2 with one line naming the key."""

from __future__ import annotations

import yaml

from pipeline.cli import main
from tests.conftest import shared_path
from tests.tokenization.conftest import write_parts


def write_config(tmp_path, **overrides) -> str:
    config = {"output": str(tmp_path / "out"), "seed": 0,
              "inputs": [{"path": str(shared_path("general_wikitext2")) + "/*.txt.gz", "format": "text",
                          "separator": "^ = [^=].* = $", "source": "wiki"}],
              "tokenizer": {"vocab_size": 500, "model_type": "unigram", "max_sample_bytes": 200_000}}
    config.update(overrides)
    path = tmp_path / "tokenizer.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_train_from_inputs_is_deterministic(tmp_path, capsys):
    config = write_config(tmp_path)
    assert main(["tokenizer", "train", config, "--output", str(tmp_path / "a")]) == 0
    assert main(["tokenizer", "train", config, "--output", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "vocab:   500 pieces (unigram), eos_id 2" in out
    a, b = ((tmp_path / d / "tokenizer.model").read_bytes() for d in ("a", "b"))
    assert a == b and (tmp_path / "a" / "tokenizer.model.sha256").exists()
    assert (tmp_path / "a" / "tokenizer.json").exists()


def test_train_from_a_stage_output_folder(tmp_path, shared_docs):
    write_parts(tmp_path / "docs", shared_docs[:200], per_part=50)
    config = write_config(tmp_path, inputs=None, documents=str(tmp_path / "docs"))
    assert main(["tokenizer", "train", config]) == 0
    assert (tmp_path / "out" / "tokenizer.model").stat().st_size > 0


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    config = write_config(tmp_path, tokenizer={"vocab_size": 10})
    assert main(["tokenizer", "train", config]) == 2
    assert "tokenizer.vocab_size: Input should be greater than or equal to 300" in capsys.readouterr().err
    config = write_config(tmp_path, documents="somewhere")
    assert main(["tokenizer", "train", config]) == 2
    assert "exactly one of `documents`" in capsys.readouterr().err
