"""`thresher ablate` configuration: YAML -> typed, frozen, validated objects, once, at start-up.

    output: out/ablate-curation
    variants:                                   # compared in this order (at least two)
      raw: {pipeline: configs/ablate/raw.yaml}  # a pipeline config (a path, or inline: inputs + stages)
      curated: {pipeline: {inputs: [...], stages: [...]}}
      earlier: {shards: out/web}                # a tokenize output, or a run holding one
    tokenizer: {train: {vocab_size: 8000}}      # or {model: tok.model}: one tokenizer for every variant
    model: {preset: tiny, max_seq_len: 256}     # the proxy (training.config's `model:`)
    train: {tokens: 2000000, seq_len: 128, global_batch_size: 16, micro_batch_size: 16, lr: 3.0e-3,
            warmup_steps: 20, evals: 8}         # tokens: the budget of every variant; the rest: the trainer's
    seeds: [0, 1, 2]                            # at least three: the spread is part of the answer
    eval_sets:                                  # text no variant trains on, tokenized once
      wikitext2: {path: data/wiki.txt.gz, format: text, separator: "^ = [^=].* = $", max_tokens: 200000}
      reuters: {path: data/reuters.jsonl.gz, format: jsonl, text_field: body, max_docs: 500}
    tokenize: {valid_fraction: 0.01}            # the variants' tokenize stage (model: the shared one)

Errors name the dotted key (`variants.raw.pipeline: ...`, `train.lr: ...`) as pipeline/config.py's do;
`train` and `model` are checked by building the trainer's own config (training/config.py).

    from training.ablate.config import load_ablate_config
    config = load_ablate_config("configs/ablate-curation.yaml")
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config import ConfigError, Frozen, RunConfig, expand_env, load_yaml, parse_config, validate_config
from tokenization.train import TokenizerOptions
from training.config import TrainConfig, filesystem_folder, parse_train_config

NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
TOP_KEYS = ("output", "variants", "tokenizer", "model", "train", "seeds", "eval_sets", "tokenize")


class VariantSpec(Frozen):
    pipeline: str | dict[str, Any] | None = Field(None, description="pipeline config: a YAML path or inline")
    shards: str | None = Field(None, description="a tokenize output (manifest.json, its folder, or a run)")
    weights: dict[str, float] | None = Field(None, description="domain -> share of the training sequences "
                                             "(the trainer's data.weights; default: the shards' mixture)")

    @model_validator(mode="after")
    def _one_source(self) -> VariantSpec:
        if (self.pipeline is None) == (self.shards is None):
            raise ValueError("give exactly one of `pipeline` (a config to run) or `shards` (token shards)")
        return self


class TokenizerSpec(Frozen):
    model: str | None = Field(None, description="a sentencepiece .model shared by every variant")
    train: TokenizerOptions | None = Field(None, description="train one on an equal-bytes sample of each variant")

    @model_validator(mode="after")
    def _one(self) -> TokenizerSpec:
        if (self.model is None) == (self.train is None):
            raise ValueError("give exactly one of `model` (a .model path) or `train` (tokenizer options)")
        return self


class EvalSetSpec(Frozen):
    path: str = Field(description="file or glob of text (one document per file, or per `separator`) or JSONL")
    format: Literal["text", "jsonl", "parquet"]
    text_field: str = "text"
    separator: str | None = Field(None, description="text: regex of the line that starts a new document")
    max_docs: int | None = Field(None, gt=0, description="the first N documents only")
    max_tokens: int | None = Field(None, gt=0, description="stop after the document that reaches N tokens")
    where: dict[str, list[str]] | None = Field(None, description="JSONL/Parquet: keep records whose field (a "
                                               "top-level key) holds one of these values")


class Budget(Frozen):
    """`train:` keys of the ablation itself; every other key there is the trainer's (`TrainOptions`)."""

    tokens: int = Field(gt=0, description="training tokens per variant and seed, the same for every variant")
    seq_len: int = Field(128, gt=0, description="tokens per training sequence")
    evals: int = Field(8, gt=0, description="validations along the way (the loss curves' points)")


class TokenizeSpec(Frozen):
    valid_fraction: float = Field(0.01, ge=0, lt=1)
    max_shard_tokens: int = Field(500_000_000, gt=0)


class AblateConfig(Frozen):
    output: str = Field(description="a local or shared-filesystem folder (the proxies' checkpoints go under it)")
    variants: dict[str, VariantSpec] = Field(min_length=2)
    tokenizer: TokenizerSpec
    model: dict[str, Any] = Field(default_factory=lambda: {"preset": "tiny"})
    train: dict[str, Any]
    seeds: list[int] = Field(min_length=3, description="one proxy per variant and seed")
    eval_sets: dict[str, EvalSetSpec] = Field(min_length=1)
    tokenize: TokenizeSpec = TokenizeSpec()
    init_from: str | None = Field(None, description="a `thresher train` output (or checkpoint): every proxy starts "
                                  "from its weights (continued pre-training); its perplexity at step 0 is the start")

    @field_validator("output")
    @classmethod
    def _filesystem_output(cls, output: str) -> str:
        return filesystem_folder(output, " for the variants' runs and proxies")

    @field_validator("variants", "eval_sets")
    @classmethod
    def _names(cls, value: dict) -> dict:
        for name in value:
            if not NAME.match(name):
                raise ValueError(f"{name!r}: names may use letters, digits, '_', '.' and '-' only")
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds

    @property
    def budget(self) -> Budget:
        return Budget.model_validate({k: v for k, v in self.train.items() if k in Budget.model_fields})

    def steps(self) -> int:
        """Optimizer steps that reach the token budget (rounded up to whole steps)."""
        per_step = self.train.get("global_batch_size", 16) * self.budget.seq_len
        return math.ceil(self.budget.tokens / per_step)

    def train_config(self, manifest: str, output: str, seed: int, eval_sets: dict[str, dict],
                     weights: dict[str, float] | None = None) -> TrainConfig:
        """The trainer's config of one proxy: the budget as steps, validations at `evals` points,
        every one of them also a checkpoint (a killed training resumes from the last). A
        validation reads every eval set whole (`eval_sets`: name -> {prefix, tokens}), and as
        many sequences of each variant's own held-out shard."""
        steps = self.steps()
        every = max(1, steps // self.budget.evals)
        samples = max([math.ceil(s["tokens"] / self.budget.seq_len) for s in eval_sets.values()], default=1)
        options = {k: v for k, v in self.train.items() if k not in Budget.model_fields}
        data = {"output": output, "seed": seed, "model": dict(self.model),
                "data": {"manifest": manifest, "seq_len": self.budget.seq_len, "prefetch": 0,
                         **({"weights": weights} if weights else {})},
                "train": {**options, "steps": steps},
                "checkpoint": {"every": every, "keep": 1, **({"init_from": self.init_from} if self.init_from else {})},
                "eval": {"every": every, "samples": samples, "sets": {n: s["prefix"] for n, s in eval_sets.items()}},
                "log": {"every": every}}
        return parse_train_config(data)

    def pipeline_config(self, name: str, output: str) -> RunConfig:
        """Variant `name`'s pipeline, writing to `output` (its own `output` key is ignored)."""
        spec = self.variants[name].pipeline
        where = f"variants.{name}.pipeline"
        data = load_yaml(spec) if isinstance(spec, str) else dict(spec)
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: the pipeline config must be a mapping with inputs and stages")
        data = {"output": output, **{k: v for k, v in data.items() if k != "output"}}
        try:
            return parse_config(data, output=output)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None


def parse_ablate_config(data: Any, output: str | None = None) -> AblateConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"config: the top level must be a mapping with {', '.join(TOP_KEYS)}")
    data = expand_env(dict(data))
    if output is not None:
        data["output"] = output
    train = data.get("train")
    if not isinstance(train, dict):
        raise ConfigError("train: required mapping with at least `tokens` (the budget per variant)")
    if "steps" in train:
        raise ConfigError("train.steps: set by train.tokens (the same budget for every variant); remove it")
    validate_config(Budget, {k: v for k, v in train.items() if k in Budget.model_fields}, "train")
    config = validate_config(AblateConfig, data)
    config.train_config("manifest.json", "out", config.seeds[0], {})  # train.* and model.* fail here, named
    for name, spec in config.variants.items():
        if spec.pipeline is not None:
            config.pipeline_config(name, str(Path(config.output) / "variants" / name))
        elif config.tokenizer.model is None:
            raise ConfigError(f"variants.{name}.shards: shards come with their tokenizer; give it as "
                              "tokenizer.model so every variant shares it")
    return config


def load_ablate_config(path: str | Path, output: str | None = None) -> AblateConfig:
    return parse_ablate_config(load_yaml(path), output)
