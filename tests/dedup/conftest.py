"""Fixtures for the dedup tests: Dask clients with 1 and 2 worker processes, a runner helper,
readers of a stage's outputs, and a small near-duplicate corpus built from real Reuters
stories (../shared/data) with seeded edits."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from pipeline.config import parse_config
from pipeline.context import GlobalContext, StageOutput
from pipeline.io import write_parquet
from pipeline.parts import read_part
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table
from pipeline.runner import Runner
from pipeline.stats import StageStats
from tests.conftest import REPO, shared_path

DEDUP_CONFIG = REPO / "configs" / "dedup.yaml"



def recipe_stages() -> list:
    """The stages of configs/dedup.yaml (every stage at its defaults)."""
    return yaml.safe_load(DEDUP_CONFIG.read_text())["stages"]


def run(client, output: Path, inputs: list[dict], stages: list, **extra) -> dict:
    config = parse_config({"output": str(output), "inputs": inputs, "stages": stages, **extra})
    return Runner(config, client, progress=False).run()


def write_jsonl(path: Path, records: list[dict]) -> dict:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return {"path": str(path), "format": "jsonl", "source": path.stem}


def run_global(stage, parts: list[list[Document]], root: Path, client) -> tuple[dict, StageStats, Path]:
    """Run a global stage on `parts` (written as part-00000.parquet, ...) as the runner would."""
    input_dir, out_dir = root / "input", root / "output"
    input_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True)
    for i, docs in enumerate(parts):
        write_parquet(documents_to_table(docs, DOCUMENT_SCHEMA), input_dir / f"part-{i:05d}.parquet")
    names = tuple(f"part-{i:05d}.parquet" for i in range(len(parts)))
    ctx = GlobalContext(client, StageOutput(input_dir, "test", names, DOCUMENT_SCHEMA), out_dir, 0, progress=False)
    result = stage.run(ctx)
    return result.extra, result.stats, out_dir


def stage_dir(output: Path, name: str) -> Path:
    return next(output.glob(f"[0-9][0-9]-{name}"))


def rows(stage: Path, sub: str = "") -> list[dict]:
    """All rows of a stage's parts (or of `sub`, e.g. "rejected"), metadata parsed. A finished
    stage's parts are those its manifest lists, read as the next stage reads them (a global
    stage before the last writes views of its input's parts: pipeline/parts.py)."""
    out = []
    manifest = stage / "_manifest.json"
    if not sub and manifest.exists():
        tables = [read_part(str(stage / p)) for p in json.loads(manifest.read_text())["parts"]]
    else:
        tables = [pq.read_table(path) for path in sorted((stage / sub).glob("part-*.parquet"))]
    for table in tables:
        for row in table.to_pylist():
            row["metadata"] = json.loads(row["metadata"]) if row.get("metadata") else {}
            out.append(row)
    return out


def manifest(stage: Path) -> dict:
    return json.loads((stage / "_manifest.json").read_text())


def digest_outputs(root: Path) -> dict[str, str]:
    """sha256 of every output file (Parquet parts, rejected, artefacts), by relative path, plus
    each manifest without its timings. Hidden temporary files of a killed write are skipped."""
    out = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.name in ("stats.json", "_stage.json", "config.yaml"):
            continue
        rel = str(path.relative_to(root))
        if path.name == "_manifest.json":
            m = json.loads(path.read_text())
            m.pop("wall_seconds")
            m["stats"].pop("seconds")
            out[rel] = json.dumps(m, sort_keys=True)
        elif "/_stats/" not in f"/{rel}":
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def reuters_near_duplicates(n_stories: int, seed: int = 0) -> list[dict]:
    """`n_stories` real Reuters stories, a third of them re-issued with a changed headline,
    a dropped sentence or a footer (seeded); `story` names the original."""
    rng = random.Random(seed)
    path = shared_path("financial_reuters21578", "reuters21578.jsonl.gz")
    stories = []
    with gzip.open(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r.get("body") and len(r["body"].split()) >= 60:
                stories.append(r)
            if len(stories) == n_stories:
                break
    docs = []
    for r in stories:
        docs.append({"text": r["body"], "story": r["newid"], "quality": rng.random()})
        if rng.random() < 1 / 3:
            sentences = r["body"].split(". ")
            edited = ". ".join(sentences[:-2] + sentences[-1:]) if len(sentences) > 3 else r["body"]
            docs.append({"text": f"UPDATE 1-{r.get('title')}\n{edited}\nReporting by Ann Brown",
                         "story": r["newid"], "quality": rng.random()})
    rng.shuffle(docs)
    return docs
