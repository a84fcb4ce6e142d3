"""`read: {limit: N}` and `thresher run --sample N`: each input gives its first N documents in
file order (rejected records do not count, an input's files are read one after another), the
same bytes on any number of workers, in a folder of its own; the limit is part of the read
stage's fingerprint, and leaving it unset keeps earlier runs' fingerprints."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import __version__
from pipeline.config import config_hash, parse_config
from pipeline.readers import list_tasks
from pipeline.runner import Runner
from tests.conftest import REPO

pytestmark = pytest.mark.slow
THRESHER = [sys.executable, "-m", "pipeline.cli"]


def inputs(tmp_path) -> list[dict]:
    """`a`: three files of 4 documents, a broken line first; `b`: one file of 20."""
    for f in range(3):
        lines = ["{broken"] if f == 0 else []
        lines += [json.dumps({"text": f"a{f}-{i} " * 5}) for i in range(4)]
        (tmp_path / f"a-{f}.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": f"b-{i} " * 5}) + "\n" for i in range(20)))
    return [{"path": str(tmp_path / "a-*.jsonl"), "format": "jsonl", "source": "a"},
            {"path": str(tmp_path / "b.jsonl"), "format": "jsonl", "source": "b"}]


def ids(stage_dir) -> list[str]:
    parts = json.loads((stage_dir / "_manifest.json").read_text())["parts"]
    return [i for p in parts for i in pq.read_table(stage_dir / p, columns=["id"])["id"].to_pylist()]


def digests(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def test_sample_takes_each_inputs_first_documents_the_same_on_any_workers(tmp_path):
    config = {"output": str(tmp_path / "out"), "inputs": inputs(tmp_path), "read": {"max_docs_per_part": 3},
              "stages": [{"min_chars": {"min_chars": 5}}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    for workers in ("1", "2"):
        output = [] if workers == "1" else ["--output", str(tmp_path / "again")]
        proc = subprocess.run(THRESHER + ["run", str(tmp_path / "run.yaml"), "--sample", "10", "--workers", workers,
                                          "--no-progress", *output], capture_output=True, text=True, cwd=REPO,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
    sample = tmp_path / "out-sample-10"  # never the full run's folder
    assert not (tmp_path / "out").exists()
    expected = [f"a/a-{f}.jsonl:{i + (2 if f == 0 else 1)}" for f in range(3) for i in range(4)][:10]
    expected += [f"b/b.jsonl:{i + 1}" for i in range(10)]
    assert sorted(ids(sample / "00-read")) == sorted(expected)
    read = json.loads((sample / "00-read" / "_manifest.json").read_text())["stats"]
    assert read["docs_out"] == 20 and read["rejected"] == {"read.invalid_json": 1}
    assert digests(sample) == digests(tmp_path / "again")
    assert yaml.safe_load((sample / "config.yaml").read_text())["read"]["limit"] == 10


def test_the_limit_is_in_the_read_fingerprint_and_unset_keeps_the_old_one(tmp_path, client):
    config = {"output": str(tmp_path / "out"), "inputs": inputs(tmp_path)}
    Runner(parse_config(config), client, progress=False).run()
    full = json.loads((tmp_path / "out" / "00-read" / "_manifest.json").read_text())
    spec = parse_config(config)
    files = [(f.relpath, f.size) for t in list_tasks(spec.inputs, spec.read) for f in t.files]
    # ReadOptions before `limit` and `materialize`: unset, they leave the fingerprint as it was
    old_read = {k: v for k, v in spec.read.model_dump().items() if k not in ("limit", "materialize")}
    specs = [s.model_dump(exclude={"storage_options"}) for s in spec.inputs]
    assert full["fingerprint"] == config_hash([__version__, specs, old_read, files])
    assert full["stats"]["docs_out"] == 32

    Runner(parse_config({**config, "read": {"limit": 3}}), client, progress=False).run()
    limited = json.loads((tmp_path / "out" / "00-read" / "_manifest.json").read_text())
    assert limited["fingerprint"] != full["fingerprint"] and limited["stats"]["docs_out"] == 6
    assert sorted(ids(tmp_path / "out" / "00-read")) == ["a/a-0.jsonl:2", "a/a-0.jsonl:3", "a/a-0.jsonl:4",
                                                         "b/b.jsonl:1", "b/b.jsonl:2", "b/b.jsonl:3"]


def test_a_killed_sample_resumes_to_the_same_documents(tmp_path, client):
    config = {"output": str(tmp_path / "out"), "inputs": inputs(tmp_path), "read": {"limit": 9}}
    Runner(parse_config(config), client, progress=False).run()
    read = tmp_path / "out" / "00-read"
    before = digests(read)
    (read / "_manifest.json").unlink()  # killed after the first two files of `a` were committed
    (read / "_stats" / "task-00002.json").unlink()
    Runner(parse_config(config), client, progress=False).run()
    assert digests(read) == before and len(ids(read)) == 18
