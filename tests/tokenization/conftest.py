"""Fixtures for the tokenization tests: Dask clients with 1 and 2 worker processes, a slice of
real financial (Reuters-21578) and general (WikiText-2) documents from ../shared/data, a small
sentencepiece model trained on them, and a helper that runs a global stage on parquet parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import InputSpec, ReadOptions
from pipeline.context import GlobalContext, StageOutput
from pipeline.readers import list_tasks, read_file
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table
from pipeline.stats import StageStats
from tests.conftest import shared_path
from tokenization.train import TokenizerOptions, train_tokenizer


def read_documents(spec: InputSpec, limit: int) -> list[Document]:
    docs: list[Document] = []
    for task in list_tasks([spec], ReadOptions()):
        for file in task.files:
            docs += [d for d in read_file(file, spec, ReadOptions()) if isinstance(d, Document) and d.text]
    return docs[:limit]


@pytest.fixture(scope="session")
def shared_docs() -> list[Document]:
    """300 Reuters stories (financial) and 30 WikiText-2 articles (general)."""
    reuters = shared_path("financial_reuters21578", "reuters21578.jsonl.gz")
    wiki = shared_path("general_wikitext2")
    financial = read_documents(InputSpec(path=str(reuters), format="jsonl", text_field="body",
                                         source="reuters", domain="financial"), 300)
    general = read_documents(InputSpec(path=f"{wiki}/*.txt.gz", format="text", separator="^ = [^=].* = $",
                                       source="wikitext2", domain="general"), 30)
    return financial + general


@pytest.fixture(scope="session")
def small_model(shared_docs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.model"
    train_tokenizer([d.text for d in shared_docs], TokenizerOptions(vocab_size=1000), path)
    return path


def write_parts(directory: Path, docs: list[Document], per_part: int) -> Path:
    """`docs` as part-00000.parquet, part-00001.parquet, ... (a finished stage's output)."""
    from pipeline.io import write_parquet

    directory.mkdir(parents=True, exist_ok=True)
    for i in range(0, max(len(docs), 1), per_part):
        write_parquet(documents_to_table(docs[i:i + per_part], DOCUMENT_SCHEMA),
                      directory / f"part-{i // per_part:05d}.parquet")
    return directory


def run_global(stage, input_dir: Path, out_dir: Path, client, seed: int = 0) -> tuple[dict, StageStats]:
    """Run a global stage on the parts in `input_dir` as the runner would."""
    parts = tuple(sorted(p.name for p in input_dir.glob("part-*.parquet")))
    ctx = GlobalContext(client, StageOutput(input_dir, "test", parts, DOCUMENT_SCHEMA), out_dir, seed, progress=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = stage.run(ctx)
    return result.extra, result.stats
