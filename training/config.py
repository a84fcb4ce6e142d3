"""Training configuration: YAML -> typed, frozen, validated objects, once, at start-up.

    output: out/train-tiny              # checkpoints/, metrics.jsonl, config.yaml go here
    seed: 0
    model: {preset: tiny}               # tiny | 125m | 350m | 1b, or explicit dim/n_layers/...
    data:
      manifest: out/demo/07-tokenize/manifest.json
      seq_len: 128
      weights: {financial: 0.51, general: 0.49}   # optional; default: the manifest's mixture
    train: {steps: 200, global_batch_size: 16, micro_batch_size: 8, lr: 3.0e-3, warmup_steps: 20}
    checkpoint: {every: 50, keep: 2, init_from: null}   # folder: default OUTPUT/checkpoints, or s3://...
    eval: {every: 50, samples: 16}
    log: {every: 10}

Errors name the dotted key (`train.global_batch_size: ...`); `--set train.steps=10` overrides
any key from the command line (values parsed as YAML).

    from training.config import load_train_config
    config = load_train_config("configs/train-tiny.yaml", overrides=["train.steps=10"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from pipeline.configbase import ConfigError, Frozen, expand_env, load_yaml, validate_config
from pipeline.options import REDACTED

# Llama-style shapes. 125m/350m follow GPT-3's table (Brown et al. 2020, Table 2.1) widths and
# depths; 1b is Llama 3.2 1B's body (dim 2048, 16 layers, 32 heads, 8 KV heads, FFN 8192).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"dim": 64, "n_layers": 2, "n_heads": 4, "ffn_hidden": 192},
    "125m": {"dim": 768, "n_layers": 12, "n_heads": 12, "ffn_hidden": 2048},
    "350m": {"dim": 1024, "n_layers": 24, "n_heads": 16, "ffn_hidden": 2816},
    "1b": {"dim": 2048, "n_layers": 16, "n_heads": 32, "n_kv_heads": 8, "ffn_hidden": 8192},
}


class ModelConfig(Frozen):
    preset: Literal["tiny", "125m", "350m", "1b"] | None = None
    dim: int = Field(64, gt=0)
    n_layers: int = Field(2, gt=0)
    n_heads: int = Field(4, gt=0)
    n_kv_heads: int | None = Field(None, gt=0, description="grouped-query attention; default n_heads")
    ffn_hidden: int = Field(192, gt=0, description="SwiGLU hidden width (~8/3 · dim)")
    vocab_size: int = Field(0, ge=0, description="0: take it from the shard manifest")
    max_seq_len: int = Field(2048, gt=0)
    norm_eps: float = Field(1e-5, gt=0)
    rope_theta: float = Field(10000.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            return {**PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _check_heads(self) -> ModelConfig:
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError("dim must be a multiple of n_heads with an even head size (rotary pairs)")
        if self.n_heads % self.kv_heads:
            raise ValueError("n_heads must be a multiple of n_kv_heads")
        return self

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads


class DataConfig(Frozen):
    manifest: str = Field(description="manifest.json written by the tokenize stage")
    seq_len: int = Field(128, gt=0, description="tokens per training sequence")
    weights: dict[str, float] | None = Field(None, description="domain -> share; default: manifest mixture")
    prefetch: int = Field(2, ge=0, description="steps read ahead on a background thread (0: read in the step loop)")
    index_cache: str | None = Field(None, description="folder for the loader's memory-mapped document index, "
                                    "shared by the ranks (default: OUTPUT/data-index)")

    @model_validator(mode="after")
    def _check_weights(self) -> DataConfig:
        if self.weights is not None and (not self.weights or any(w < 0 for w in self.weights.values())
                                         or sum(self.weights.values()) <= 0):
            raise ValueError("weights must map domains to non-negative shares with a positive sum")
        return self


class TrainOptions(Frozen):
    steps: int = Field(100, gt=0, description="optimizer steps")
    global_batch_size: int = Field(16, gt=0, description="sequences per optimizer step, all ranks")
    micro_batch_size: int = Field(8, gt=0, description="sequences per forward/backward on one rank")
    lr: float = Field(3e-4, gt=0, description="peak learning rate")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to this fraction of lr")
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm")
    activation_checkpointing: bool = False
    compile: bool = Field(False, description="torch.compile each block")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    peak_tflops: float | None = Field(None, gt=0, description="device peak for MFU; default: known GPUs")

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainOptions:
        if self.warmup_steps >= self.steps:
            raise ValueError("warmup_steps must be smaller than steps")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError("global_batch_size must be a multiple of micro_batch_size")
        return self


class CheckpointOptions(Frozen):
    every: int = Field(50, gt=0, description="save every N steps (and at the end)")
    keep: int = Field(2, gt=0, description="newest checkpoints to keep")
    folder: str | None = Field(None, description="where checkpoints go and are resumed from: a folder or an "
                               "fsspec URL (s3://bucket/run/checkpoints); default OUTPUT/checkpoints")
    init_from: str | None = Field(None, description="checkpoint dir or URL: load model weights only (fresh "
                                  "optimizer, schedule and data order), for domain adaptation")


class EvalOptions(Frozen):
    every: int = Field(50, gt=0, description="validate every N steps (and before and after training)")
    samples: int = Field(16, gt=0, description="validation sequences per domain")
    sets: dict[str, str] = Field(default_factory=dict, description="name -> token file prefix (.bin/.idx, "
                                 "tokenized with the shards' tokenizer): also validated on, beside the domains")


class LogOptions(Frozen):
    every: int = Field(10, gt=0)


class TrainConfig(Frozen):
    output: str = Field(description="a local or shared-filesystem folder: metrics.jsonl, config.yaml, the data "
                        "index, and checkpoints/ unless checkpoint.folder puts them elsewhere")
    seed: int = 0
    model: ModelConfig = ModelConfig()
    data: DataConfig
    train: TrainOptions = TrainOptions()
    checkpoint: CheckpointOptions = CheckpointOptions()
    eval: EvalOptions = EvalOptions()
    log: LogOptions = LogOptions()
    storage_options: dict[str, Any] | None = Field(
        None, description="fsspec options for the URLs of data.manifest, checkpoint.folder and checkpoint.init_from "
        "(endpoint, credentials; never written out; default: the environment)")

    @field_validator("output")
    @classmethod
    def _filesystem_output(cls, output: str) -> str:
        return filesystem_folder(output, " (checkpoints may go to object storage with checkpoint.folder: "
                                 "s3://..., and the shards, data.manifest, may be on s3://)")

    @property
    def checkpoint_folder(self) -> str:
        return self.checkpoint.folder or str(Path(self.output) / "checkpoints")

    @model_validator(mode="after")
    def _check_lengths(self) -> TrainConfig:
        if self.data.seq_len > self.model.max_seq_len:
            raise ValueError("data.seq_len must not exceed model.max_seq_len")
        return self

    def grad_accum_steps(self, world_size: int) -> int:
        per_step = self.train.micro_batch_size * world_size
        if self.train.global_batch_size % per_step:
            raise ConfigError(f"train.global_batch_size ({self.train.global_batch_size}) must be a multiple "
                              f"of micro_batch_size x ranks ({per_step})")
        return self.train.global_batch_size // per_step

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as written beside the run: storage options (credentials) show
        their keys only, never their values."""
        d = self.model_dump(mode="json")
        options = d.pop("storage_options")
        if options:  # absent when unset, so a config without them writes what it always did
            d["storage_options"] = {key: REDACTED for key in options}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def configure_storage(self) -> None:
        """Use `storage_options` for the config's URLs, in this process (every rank calls it)."""
        from pipeline import storage

        for url in (self.data.manifest, self.checkpoint.folder, self.checkpoint.init_from):
            if url and not storage.is_local(url):
                storage.configure(url, self.storage_options)


def filesystem_folder(output: str, elsewhere: str = "") -> str:
    """`output` when it is a filesystem path; a URL is refused (the metrics log is appended to and
    the data index memory-mapped, which need a filesystem). `elsewhere`: what may be on a URL."""
    if "://" in output:
        raise ValueError(f"{output!r} is a URL: training appends its metrics and memory-maps its data index, so "
                         f"give a local or shared-filesystem folder{elsewhere}")
    return output


def _set_dotted(data: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"--set {key}: {part} is not a mapping")
    data[last] = value


def parse_train_config(data: Any, overrides: list[str] = (), output: str | None = None) -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping with output, model, data, train")
    data = expand_env(dict(data))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.steps=10")
        _set_dotted(data, key.strip(), yaml.safe_load(value))
    if output is not None:
        data["output"] = output
    return validate_config(TrainConfig, data)


def load_train_config(path: str | Path, overrides: list[str] = (), output: str | None = None) -> TrainConfig:
    data = load_yaml(path)
    return parse_train_config(data, overrides, output)
