"""Training configs: the bundled YAML files load, presets expand, errors name the key; the
trainer needs the shard format and the generic config helpers, not the pipeline's run config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.configbase import ConfigError
from training.config import load_train_config, parse_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = {"output": "out/x", "data": {"manifest": "m.json"}}


@pytest.mark.parametrize("name", ["train-tiny", "dapt-tiny", "train-125m", "train-350m", "train-1b"])
def test_bundled_configs_load(name):
    config = load_train_config(CONFIGS / f"{name}.yaml")
    assert config.train.warmup_steps < config.train.steps


def test_dapt_config_starts_from_weights_with_a_51_49_mixture():
    config = load_train_config(CONFIGS / "dapt-tiny.yaml")
    assert config.checkpoint.init_from == "out/train-tiny"
    assert config.data.weights == {"financial": 0.51, "general": 0.49}
    assert config.model == load_train_config(CONFIGS / "train-tiny.yaml").model


def test_preset_expands_and_explicit_keys_win():
    config = parse_train_config({**BASE, "model": {"preset": "125m", "n_layers": 6}})
    assert (config.model.dim, config.model.n_layers, config.model.n_heads) == (768, 6, 12)


def test_overrides_parse_yaml_values_at_dotted_keys():
    config = parse_train_config(BASE, ["train.steps=17", "data.weights={a: 1, b: 3}", "train.lr=1e-3"], output="o")
    assert config.train.steps == 17 and config.data.weights == {"a": 1, "b": 3}
    assert config.train.lr == 1e-3 and config.output == "o"


@pytest.mark.parametrize("change, message", [
    ({"train": {"stepz": 3}}, "train.stepz: unknown key; valid keys are: steps,"),
    ({"train": {"steps": 0}}, "train.steps: Input should be greater than 0"),
    ({"train": {"steps": 10, "warmup_steps": 10}}, "train: warmup_steps must be smaller than steps"),
    ({"train": {"global_batch_size": 10, "micro_batch_size": 4}},
     "global_batch_size must be a multiple of micro_batch_size"),
    ({"data": {}}, "data.manifest: required key is missing"),
    ({"data": {"manifest": "m", "seq_len": 4096}}, "data.seq_len must not exceed model.max_seq_len"),
    ({"output": "s3://bucket/run"}, "output: 's3://bucket/run' is a URL: .* checkpoint.folder: s3://"),
])
def test_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_train_config({**BASE, **change})


def test_batch_must_split_over_the_ranks():
    config = parse_train_config({**BASE, "train": {"global_batch_size": 12, "micro_batch_size": 4}})
    assert config.grad_accum_steps(3) == 1
    with pytest.raises(ConfigError,
                       match=r"train.global_batch_size \(12\) must be a multiple of micro_batch_size x ranks \(8\)"):
        config.grad_accum_steps(2)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_train_config(BASE, ["train.steps"])


def test_the_trainer_does_not_import_the_pipeline_config():
    code = ("import sys, training.config, training.train, training.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pipeline', 'filters', 'dedup')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2]).stdout
    assert "pipeline.configbase" in loaded
    for module in ("pipeline.config", "pipeline.stage", "pipeline.runner", "filters", "dedup"):
        assert f"'{module}'" not in loaded, loaded


def test_storage_options_reach_the_urls_and_are_never_written(monkeypatch):
    from pipeline import storage

    monkeypatch.setattr(storage, "_OPTIONS", {})  # this process's registry, restored after

    secret = {"key": "AKIA-not-real", "secret": "s3cr3t", "client_kwargs": {"endpoint_url": "http://minio:9000"}}
    config = parse_train_config({**BASE, "data": {"manifest": "s3://shards-bucket/run"},
                                 "checkpoint": {"folder": "s3://ckpt-bucket/run/checkpoints"},
                                 "storage_options": secret})
    written = config.to_yaml() + json.dumps(config.to_dict())
    assert "s3cr3t" not in written and "AKIA" not in written and "minio" not in written
    assert yaml.safe_load(config.to_yaml())["storage_options"] == {k: "<redacted>" for k in secret}
    assert "storage_options" not in parse_train_config(BASE).to_dict()  # unset: not written at all
    config.configure_storage()
    assert storage.options_for("s3://ckpt-bucket/run/checkpoints/step-000004") == secret
    assert storage.options_for("s3://shards-bucket/run/01-tokenize/manifest.json") == secret
    assert storage.options_for("s3://other-bucket/x") == {}
