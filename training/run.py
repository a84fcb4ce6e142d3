"""A finished `thresher train` output, opened for use: its config, checkpoints, tokenizer and the
model with its newest intact weights. `lm_score` scores with it; `thresher export-hf` converts it.

    run = TrainedRun("out/train-tiny")          # a folder, or a URL holding a copy of one
    run.config, run.checkpoints, run.tokenizer_path, run.eos_id, run.vocab_size
    model, step_dir = run.load_model()          # a Transformer in eval mode (one process, CPU)

The run's config.yaml names its shards (`data.manifest`), whose manifest names the tokenizer;
its checkpoints are under `checkpoint.folder` when it was trained with one, else checkpoints/
under the run folder (which may be a copy of the output elsewhere).
"""

from __future__ import annotations

import os
import warnings

import yaml

from pipeline import storage
from training.config import TrainConfig, parse_train_config


class TrainedRun:
    def __init__(self, run_dir: str | os.PathLike, key: str = "model"):
        """`key`: the setting that named the run, for error messages."""
        from tokenization.manifest import load_manifest
        from training.shards import find_manifest

        self.dir, self.key = os.fspath(run_dir), key
        self.config = run_config(self.dir, key)
        self.checkpoints = checkpoint_folder(self.dir, self.config)
        manifest = find_manifest(self.config.data.manifest)
        if not storage.isfile(manifest):
            raise ValueError(f"{key}: {self.dir} takes its tokenizer from its data.manifest, {manifest}, which is "
                             "not there; copy that tokenize output beside it and edit config.yaml")
        shards = load_manifest(manifest)
        self.tokenizer_path = shards.tokenizer_path
        self.eos_id, self.bos_id = shards.manifest.eos_id, shards.manifest.bos_id
        self.vocab_size = self.config.model.vocab_size or shards.manifest.vocab_size
        self.model_config = self.config.model.model_copy(update={"vocab_size": self.vocab_size})

    def load_model(self):
        """(the model with the newest intact checkpoint's weights, that checkpoint), for use in
        one process."""
        import torch

        from training.checkpoint import load_weights
        from training.model import Transformer

        torch.manual_seed(0)
        model = Transformer(self.model_config)
        with warnings.catch_warnings():  # "no process group: loading in a single process", as meant
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            step_dir = load_weights(model, self.checkpoints, warn=lambda _: None)
        return model.eval(), step_dir


def run_config(run_dir: str, key: str = "model") -> TrainConfig:
    """The TrainConfig of the `thresher train` output at `run_dir` (a folder or a URL)."""
    path = storage.join(run_dir, "config.yaml")
    if not storage.isfile(path):
        raise ValueError(f"{key}: {run_dir} is not a `thresher train` output (no config.yaml)")
    return parse_train_config(yaml.safe_load(storage.read_bytes(path)))


def checkpoint_folder(run_dir: str, config: TrainConfig) -> str:
    """Where the run's checkpoints are: the `checkpoint.folder` it was trained with, else its
    checkpoints/ (under `run_dir`, which may be a copy of the output elsewhere)."""
    return config.checkpoint.folder or storage.join(run_dir, "checkpoints")
