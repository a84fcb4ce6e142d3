"""Small real shards for the trainer's tests and bench/train.py, made the way a user makes them:
the pipeline runner (`thresher run`) with the tokenize stage (a sentencepiece BPE tokenizer, vocab 1000, trained
in-run) over 700 Reuters-21578 stories (financial) and WikiText-2 (general, 60 articles) from
../shared/data, 5% of each domain held out as `valid`.

    manifest = build_shards(Path("/tmp/shards"))   # -> /tmp/shards/run/01-tokenize/manifest.json
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import yaml

from pipeline.cluster import open_client
from pipeline.config import load_config
from pipeline.runner import Runner
from tests.conftest import shared_path

REUTERS_STORIES = 700


def reuters_slice(path: Path) -> Path:
    """The first stories with a body of > 200 characters, as JSON lines."""
    written = 0
    with gzip.open(shared_path("financial_reuters21578", "reuters21578.jsonl.gz"), "rt") as f, \
            gzip.open(path, "wt") as out:
        for line in f:
            story = json.loads(line)
            if len((story.get("body") or "").strip()) > 200:
                out.write(json.dumps({"body": story["body"]}) + "\n")
                written += 1
            if written == REUTERS_STORIES:
                break
    return path


def build_shards(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "output": str(folder / "run"), "seed": 0,
        "inputs": [
            {"path": str(reuters_slice(folder / "reuters.jsonl.gz")), "format": "jsonl", "text_field": "body",
             "source": "reuters", "domain": "financial"},
            {"path": str(shared_path("general_wikitext2") / "*.txt.gz"), "format": "text",
             "separator": "^ = [^=].* = $", "source": "wikitext2", "domain": "general"},
        ],
        "stages": [{"tokenize": {"train": {"vocab_size": 1000}, "valid_fraction": 0.05, "max_shard_tokens": 100_000}}],
    }
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(config))
    with open_client(workers=1) as client:  # what `thresher run pipeline.yaml --workers 1` does
        Runner(load_config(folder / "pipeline.yaml"), client, progress=False).run()
    return folder / "run" / "01-tokenize" / "manifest.json"
