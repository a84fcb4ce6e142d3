"""`thresher tokenizer train CONFIG [--output DIR]`: train a sentencepiece tokenizer. `output`,
`documents` and the inputs may be URLs (s3://...).

    output: out/tokenizer            # --output overrides
    seed: 0                          # picks the document sample
    documents: out/demo/05-mix       # a run's stage output folder (its part-*.parquet), or
    inputs:                          # raw documents, read with thresher's readers
      - {path: data/*.jsonl.gz, format: jsonl, source: news}
    tokenizer: {vocab_size: 32000, model_type: bpe, byte_fallback: true, max_sample_bytes: 1e8}

Writes OUTPUT/tokenizer.model, tokenizer.model.sha256 (sha256sum format), tokenizer.vocab
(piece, score) and tokenizer.json (what was trained on, with which options). The same
documents, seed and options give the same model bytes (see `tokenization.train`).
"""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field, model_validator

from pipeline import storage
from pipeline.config import ConfigError, Frozen, InputSpec, ReadOptions, expand_env, load_yaml, validate_config
from tokenization.train import TokenizerOptions

TEXT_FORMATS = ("jsonl", "parquet", "text")


class TokenizerTrainConfig(Frozen):
    output: str
    seed: int = 0
    documents: str | None = Field(None, description="a stage output folder of part-*.parquet files")
    inputs: list[InputSpec] | None = Field(None, min_length=1)
    read: ReadOptions = ReadOptions()
    tokenizer: TokenizerOptions = TokenizerOptions()

    @model_validator(mode="after")
    def _one_source(self) -> TokenizerTrainConfig:
        if (self.documents is None) == (self.inputs is None):
            raise ValueError("give exactly one of `documents` (a stage output folder) or `inputs`")
        for spec in self.inputs or []:
            if spec.format not in TEXT_FORMATS:
                raise ValueError(f"input {spec.path!r}: format {spec.format!r} has no text before extraction; "
                                 f"use one of {', '.join(TEXT_FORMATS)}, or run the pipeline and name its "
                                 "output folder in `documents`")
        return self


def load_train_config(path: str | Path, output: str | None = None) -> TokenizerTrainConfig:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with output, documents or inputs, tokenizer")
    data = expand_env(data)
    if output is not None:
        data["output"] = output
    return validate_config(TokenizerTrainConfig, data)


def iter_documents(config: TokenizerTrainConfig) -> Iterator[tuple[str, str]]:
    """(id, text) of every document the config names, in a fixed order."""
    from pipeline.readers import list_tasks, read_file
    from pipeline.record import Document
    from tokenization.sample import iter_parquet_documents

    if config.documents is not None:
        parts = [storage.join(config.documents, name) for name in storage.listdir(config.documents)
                 if fnmatch.fnmatch(name, "part-*.parquet")]
        if not parts:
            raise ConfigError(f"documents: no part-*.parquet files in {config.documents!r}")
        yield from iter_parquet_documents(parts)
        return
    for task in list_tasks(config.inputs, config.read):
        spec = config.inputs[task.input_index]
        for file in task.files:
            for item in read_file(file, spec, config.read):
                if isinstance(item, Document) and item.text:
                    yield item.id, item.text


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.io import write_json
    from tokenization.sample import sample_texts
    from tokenization.train import train_tokenizer

    config = load_train_config(args.config, output=args.output)
    texts = sample_texts(iter_documents(config), config.seed, config.tokenizer.max_sample_bytes)
    info = train_tokenizer(texts, config.tokenizer, storage.join(config.output, "tokenizer.model"))
    write_json({"tokenizer": info.to_dict(), "config": config.model_dump(mode="json")},
               storage.join(config.output, "tokenizer.json"))
    print(f"model:   {info.path}")
    print(f"sha256:  {info.sha256}")
    print(f"vocab:   {info.vocab_size} pieces ({info.model_type}), eos_id {info.eos_id}")
    print(f"sample:  {info.documents} documents, {info.sample_bytes} bytes, {info.sentences} lines")
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("tokenizer", help="train sentencepiece tokenizers",
                                   description="Tokenizer commands (see `thresher tokenizer train --help`).")
    sub = parser.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")
    p = sub.add_parser("train", help="train a sentencepiece model on a deterministic document sample",
                       description="Train a sentencepiece tokenizer (BPE or unigram) on a seeded, size-bounded "
                       "sample of the documents CONFIG names; writes the model and its sha256.")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--output", metavar="DIR", help="output directory (overrides the config's `output`)")
    p.set_defaults(func=cmd_train)
