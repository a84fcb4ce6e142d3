"""`thresher tokenizer train` on object storage, against moto's S3 server (tests/pipeline/test_s3.py
starts it): a stage output folder on s3:// as `documents` and an s3:// `output` give the bytes a
local run gives; an s3:// folder without parts is a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from tests.pipeline import test_s3
from tests.tokenization.conftest import write_parts

server, fs = test_s3.server, test_s3.fs  # the S3 tests' moto server and client, as fixtures here

pytestmark = pytest.mark.slow

BUCKET = "tokenizers"
OUTPUTS = ("tokenizer.model", "tokenizer.model.sha256", "tokenizer.vocab")


def train(config: dict, path, env: dict) -> subprocess.CompletedProcess:
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "tokenizer", "train", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_train_from_and_to_s3_gives_the_local_bytes(server, fs, tmp_path, shared_docs):
    docs = write_parts(tmp_path / "docs", shared_docs[:120], per_part=40)
    fs.mkdir(BUCKET)
    fs.put(str(docs), f"{BUCKET}/run/05-mix", recursive=True)
    options = {"seed": 0, "tokenizer": {"vocab_size": 400, "model_type": "bpe", "max_sample_bytes": 200_000}}
    local = train({**options, "documents": str(docs), "output": str(tmp_path / "local")}, tmp_path / "local.yaml",
                  server)
    assert local.returncode == 0, local.stderr
    remote = train({**options, "documents": f"s3://{BUCKET}/run/05-mix", "output": f"s3://{BUCKET}/tokenizer"},
                   tmp_path / "s3.yaml", server)
    assert remote.returncode == 0, remote.stderr
    assert f"model:   s3://{BUCKET}/tokenizer/tokenizer.model" in remote.stdout
    fs.invalidate_cache()
    for name in OUTPUTS:
        assert fs.cat_file(f"{BUCKET}/tokenizer/{name}") == (tmp_path / "local" / name).read_bytes(), name
    summary = json.loads(fs.cat_file(f"{BUCKET}/tokenizer/tokenizer.json"))
    assert summary["tokenizer"]["documents"] == json.loads(
        (tmp_path / "local" / "tokenizer.json").read_text())["tokenizer"]["documents"] == 120

    missing = train({**options, "documents": f"s3://{BUCKET}/run/06-none", "output": f"s3://{BUCKET}/t2"},
                    tmp_path / "missing.yaml", server)
    assert missing.returncode == 2
    assert f"documents: no part-*.parquet files in 's3://{BUCKET}/run/06-none'" in missing.stderr
