"""Perplexity under a reference LM that thresher trains itself (CCNet's selection, with the
project's own Llama-style model in place of CCNet's Wikipedia 5-gram KenLM model).

- `lm_normalize` rewrites `text` into the form the reference LM is trained and scored on
  (CCNet normalises before its sentencepiece + KenLM scoring too): lower case, digits to 0,
  punctuation split off words, whitespace collapsed, WikiText's ` @-@ ` markers and `<unk>`
  removed. It is used only in the reference LM's training data (configs/lm-reference-data.yaml);
  `lm_score` applies the same function to a copy of each document, never to the kept text.
- `lm_score` adds `lm_score`, the document's perplexity (also `metadata.lm_score`; lower reads
  more like the reference text), and `lm_logprob`, its mean log-probability per token
  (= -ln perplexity, higher is better: the column `select` keeps by). Documents are scored on
  their first `max_tokens` tokens; documents without a token get null scores (`select` rejects
  them as `select.missing_score`). The model and tokenizer load once per worker process.

The reference model is a `thresher train` output folder, or a URL (s3://...) holding a copy of
one: its config.yaml, its checkpoints (checkpoints/, or the `checkpoint.folder` it names, which
may be on s3:// too) and the tokenizer of its shard manifest (`data.manifest`, local or s3://).
`make lm-reference` builds one from WikiText-2.

Config:
    - lm_score: {model: out/lm-reference, max_tokens: 256}
    - select: {column: lm_logprob, keep_top: 0.5}
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import Field

from pipeline import storage
from pipeline.record import Document, metadata_to_json, rejected_schema
from pipeline.stage import DocumentStage, MapStage, PartResult, StageParams, register
from pipeline.stats import StageStats

_WIKITEXT_MARKER = re.compile(r" @(.)@ ")
_DIGIT = re.compile(r"\d")
_PUNCT = re.compile(r"([^\w\s])")
_SPACE = re.compile(r"\s+")


def normalize_for_lm(text: str) -> str:
    """The text the reference LM sees (see module docstring)."""
    text = _WIKITEXT_MARKER.sub(r"\1", text).replace("<unk>", " ")
    text = _PUNCT.sub(r" \1 ", _DIGIT.sub("0", text.lower()))
    return _SPACE.sub(" ", text).strip()


@register
class LmNormalize(DocumentStage):
    """Rewrite text into the reference LM's normal form (for training the reference LM)."""

    name = "lm_normalize"

    class Params(StageParams):
        pass

    def process_document(self, doc: Document, stats: StageStats) -> Document:
        return doc.replace(text=normalize_for_lm(doc.text or ""))


class ReferenceLM:
    """A trained `thresher train` run, ready to score: model weights, tokenizer, EOS id."""

    def __init__(self, run_dir: str | Path):
        import sentencepiece as spm

        from training.run import TrainedRun

        run = TrainedRun(run_dir, key="lm_score.model")
        self.eos = run.eos_id
        self.tokenizer = spm.SentencePieceProcessor(model_file=str(run.tokenizer_path))
        self.piece_chars = max(len(self.tokenizer.id_to_piece(i)) for i in range(self.tokenizer.get_piece_size()))
        self.max_seq_len = run.model_config.max_seq_len
        self.model, _ = run.load_model()

    def log_probs(self, texts: list[str], max_tokens: int, batch_size: int) -> list[tuple[float, int, bool]]:
        """(mean log-probability per token, tokens scored, truncated) of each text, scored on
        its first `max_tokens` tokens, each predicted from an EOS (a document start, as in
        training) and its prefix. Texts without a token get NaN."""
        ids, truncated = [], []
        for text in texts:
            # Only a prefix is encoded: no piece is longer than `piece_chars`, so this many
            # characters hold at least max_tokens + 1 tokens (a 1 MB page costs little more
            # than a short one).
            encoded = self.tokenizer.encode(normalize_for_lm(text)[:(max_tokens + 1) * self.piece_chars])
            ids.append(encoded[:max_tokens])
            truncated.append(len(encoded) > max_tokens)
        out = [(math.nan, 0, False)] * len(ids)
        order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: (len(ids[i]), i))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            for i, value in zip(batch, self._batch([ids[i] for i in batch])):
                out[i] = (value, len(ids[i]), truncated[i])
        return out

    def _batch(self, seqs: list[list[int]]) -> list[float]:
        import torch
        import torch.nn.functional as F

        width = max(len(s) for s in seqs)
        tokens = torch.full((len(seqs), width + 1), self.eos, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.bool)
        for row, seq in enumerate(seqs):
            tokens[row, 1:len(seq) + 1] = torch.tensor(seq)
            mask[row, :len(seq)] = True
        with torch.inference_mode():
            logits = self.model(tokens[:, :-1]).float()
            logp = -F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
        # Right padding is after every real token, so the causal model never sees it.
        return ((logp * mask).sum(1) / mask.sum(1)).tolist()


_MODELS: dict[tuple, ReferenceLM] = {}
LOADS = {"count": 0}  # how many times this process loaded a model (tests check "once per worker")


def _checkpoints(run_dir: str) -> str:
    from training.run import checkpoint_folder, run_config

    config = run_config(run_dir, key="lm_score.model")
    return checkpoint_folder(run_dir, config)


def checkpoints_version(run_dir: str) -> tuple:
    """What changes when the run's checkpoints do: each entry of the folder with its modification
    time (local) or ETag (object stores)."""
    entries = storage.list_details(_checkpoints(run_dir))
    return tuple(sorted((name, str(e.get("ETag") or e.get("mtime") or e.get("LastModified")))
                        for name, e in entries.items()))


def cached_model(run_dir: str) -> ReferenceLM:
    """The reference LM of `run_dir`, loaded once per process (reloaded if its checkpoints change)."""
    key = (storage.absolute(run_dir), checkpoints_version(run_dir))
    if key not in _MODELS:
        _MODELS[key] = ReferenceLM(run_dir)
        LOADS["count"] += 1
    return _MODELS[key]


@register
class LmScore(MapStage):
    """Perplexity under the reference LM: lm_score (perplexity) and lm_logprob (no documents dropped)."""

    name = "lm_score"

    class Params(StageParams):
        model: str = Field(description="a `thresher train` output folder (e.g. out/lm-reference) or a URL "
                           "holding a copy of one")
        max_tokens: int = Field(256, gt=0, description="score longer documents on this many leading tokens")
        batch_size: int = Field(32, gt=0, description="documents per forward pass")

    def check(self) -> None:
        model = cached_model(self.params.model)
        if self.params.max_tokens > model.max_seq_len - 1:
            raise ValueError(f"lm_score.max_tokens: at most {model.max_seq_len - 1} "
                             f"(the model's max_seq_len {model.max_seq_len}, less the EOS before each document)")

    def fingerprint_extra(self) -> dict[str, str]:
        """Retrained weights at the same path rerun the stage."""
        return {"checkpoints": ",".join(storage.listdir(_checkpoints(self.params.model)))}

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        schema = input_schema
        for name in ("lm_score", "lm_logprob"):
            if name not in schema.names:
                schema = schema.append(pa.field(name, pa.float64()))
        return schema

    def process(self, table: pa.Table) -> PartResult:
        start = time.perf_counter()
        texts = [t or "" for t in column_values(table, "text")]
        scored = cached_model(self.params.model).log_probs(texts, self.params.max_tokens, self.params.batch_size)
        logprob = np.array([round(lp, 6) for lp, _, _ in scored])
        perplexity = np.round(np.exp(-logprob), 4)
        missing = np.isnan(logprob)
        metadata = [_with_score(m, None if miss else p) for m, p, miss in
                    zip(column_values(table, "metadata"), perplexity.tolist(), missing)]
        out = set_column(table, "metadata", pa.array(metadata, pa.string()))
        out = set_column(out, "lm_score", pa.array(np.nan_to_num(perplexity), mask=missing, type=pa.float64()))
        out = set_column(out, "lm_logprob", pa.array(np.nan_to_num(logprob), mask=missing, type=pa.float64()))
        stats = StageStats(docs_in=table.num_rows, docs_out=table.num_rows)
        stats.bytes_in = stats.bytes_out = sum(len(t.encode()) for t in texts)
        stats.count("no_tokens", int(missing.sum()))
        stats.count("truncated", sum(cut for _, _, cut in scored))
        stats.seconds = time.perf_counter() - start
        return PartResult(out.cast(self.output_schema(table.schema)), rejected_schema(out.schema).empty_table(), stats)


def column_values(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """`table` with column `name` replaced in place, or appended."""
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), pa.field(name, values.type), values)
    return table.append_column(pa.field(name, values.type), values)


def _with_score(metadata: str | None, perplexity: float | None) -> str:
    values = json.loads(metadata) if metadata else {}
    return metadata_to_json({**values, "lm_score": perplexity})
