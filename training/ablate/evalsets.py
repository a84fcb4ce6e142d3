"""An ablation's eval sets, tokenized once with the shared tokenizer into `.bin/.idx` files.

Documents are read with thresher's own readers (text: one per file or per `separator` line;
JSONL/Parquet: `text_field`), in file order, up to `max_docs` documents and until `max_tokens`
is reached; each is encoded and ends in EOS, as the tokenize stage writes training documents.
`OUTPUT/eval_sets/<name>.json` is written last and commits the set; a rerun reuses it while
its spec and the tokenizer are the same.

    prefixes = tokenize_eval_sets(config, "out/ablate/tokenizer/tokenizer.model")  # name -> prefix
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import ConfigError, config_hash
from pipeline.io import file_sha256, read_json, write_json
from pipeline.options import InputSpec, ReadOptions
from pipeline.readers import list_files, no_files_message, read_file
from pipeline.record import Document
from tokenization.encode import load_processor
from tokenization.indexed import IndexedWriter, token_dtype
from training.ablate.config import AblateConfig, EvalSetSpec


def eval_documents(name: str, spec: EvalSetSpec):
    """The set's texts in file order (readers' rejected and skipped records left out)."""
    source = InputSpec(path=spec.path, format=spec.format, source=name, text_field=spec.text_field,
                       separator=spec.separator)
    files = list_files(source)
    if not files:
        raise ConfigError(f"eval_sets.{name}.path: " + no_files_message(0, source).split(": ", 1)[1])
    for file in files:
        for item in read_file(file, source, ReadOptions()):
            if isinstance(item, Document) and item.text and _matches(item, spec.where):
                yield item.text


def _matches(doc: Document, where: dict[str, list[str]] | None) -> bool:
    """Whether a record's fields (kept in `metadata` by the JSONL and Parquet readers) hold the
    values `where` asks for."""
    return not where or all(str(doc.metadata.get(field)) in values for field, values in where.items())


def tokenize_eval_set(name: str, spec: EvalSetSpec, model: str, prefix: Path) -> dict:
    sp = load_processor(model)
    eos = sp.eos_id()
    documents = tokens = 0
    with IndexedWriter(prefix, token_dtype(sp.get_piece_size())) as writer:
        for text in eval_documents(name, spec):
            ids = np.asarray([*sp.encode(text), eos], dtype=np.int64)
            writer.add_document(ids)
            documents, tokens = documents + 1, tokens + len(ids)
            if documents == spec.max_docs or (spec.max_tokens and tokens >= spec.max_tokens):
                break
    if documents == 0:
        raise ConfigError(f"eval_sets.{name}: no document with text in {spec.path!r}")
    return {"documents": documents, "tokens": tokens}


def tokenize_eval_sets(config: AblateConfig, model: str) -> dict[str, dict]:
    """Name -> {prefix, documents, tokens, fingerprint} of every eval set, tokenizing what is missing."""
    folder = Path(config.output) / "eval_sets"
    sha = file_sha256(model)
    sets = {}
    for name, spec in config.eval_sets.items():
        receipt = folder / f"{name}.json"
        fingerprint = config_hash([spec.model_dump(), sha])
        if not (receipt.is_file() and read_json(receipt)["fingerprint"] == fingerprint):
            counts = tokenize_eval_set(name, spec, model, folder / name)
            write_json({"fingerprint": fingerprint, "prefix": str(folder / name), **counts}, receipt)
            print(f"[ablate] eval set {name}: {counts['documents']} documents, {counts['tokens']:,} tokens",
                  flush=True)
        sets[name] = read_json(receipt)
    return sets
