"""Classifiers on object storage, against moto's S3 server (tests/pipeline/test_s3.py starts it):
`thresher classifier train` reading its sources from s3:// and writing to an s3:// folder,
`thresher classifier evaluate` of an s3:// model on s3:// labelled data, and the classify stage
scoring with an s3:// logistic model. Each must give what the same commands give on local disk:
the same model bytes, the same metrics, the same scores."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO
from tests.pipeline import test_s3

server, fs = test_s3.server, test_s3.fs  # the S3 tests' moto server and client, as fixtures here

pytestmark = pytest.mark.slow

BUCKET = "classifiers"


def thresher(args: list[str], env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def setup(server, fs, tmp_path_factory):
    """The demo's labelled domain data, locally and in the bucket, and a logistic-model config
    for each place."""
    from pipeline.demo.crawl import write_sample
    from pipeline.demo.models import classifier_configs

    root = tmp_path_factory.mktemp("classifier-s3")
    sample = write_sample(root / "sample")
    raw = {**classifier_configs(sample)["domain"], "model": "logistic", "logistic": {"min_df": 1}}
    labels = sample / "labels" / "domain.jsonl"
    fs.mkdir(BUCKET)
    fs.put_file(str(labels), f"{BUCKET}/labels/domain.jsonl")
    fs.put_file(str(sample / "feeds" / "newswire.jsonl"), f"{BUCKET}/feeds/newswire.jsonl")
    configs = {}
    for where, path in (("local", str(labels)), ("s3", f"s3://{BUCKET}/labels/domain.jsonl")):
        configs[where] = root / f"{where}.yaml"
        configs[where].write_text(yaml.safe_dump({**raw, "sources": [{**s, "path": path} for s in raw["sources"]]}))
    return {"root": root, "configs": configs, "labels": labels, "feeds": sample / "feeds" / "newswire.jsonl"}


@pytest.fixture(scope="module")
def trained(server, fs, setup):
    root = setup["root"]
    local = thresher(["classifier", "train", str(setup["configs"]["local"]), "--output", str(root / "model")], server)
    remote = thresher(["classifier", "train", str(setup["configs"]["s3"]), "--output", f"s3://{BUCKET}/models/domain"],
                      server)
    return local, remote


def test_train_from_and_to_s3_writes_the_local_model(trained, setup, fs):
    _, remote = trained
    assert f"s3://{BUCKET}/models/domain/model.bin" in remote.stdout
    fs.invalidate_cache()
    assert sorted(fs.ls(f"{BUCKET}/models/domain", detail=False)) == [
        f"{BUCKET}/models/domain/{name}" for name in ("config.yaml", "model.bin", "report.json")]
    model = setup["root"] / "model"
    assert fs.cat_file(f"{BUCKET}/models/domain/model.bin") == (model / "model.bin").read_bytes()
    assert json.loads(fs.cat_file(f"{BUCKET}/models/domain/report.json")) == json.loads(
        (model / "report.json").read_text())
    assert fs.cat_file(f"{BUCKET}/models/domain/model.bin")[:4] == b"PAR1"  # the logistic backend's file


def test_evaluate_an_s3_model_on_s3_data_as_on_local_disk(trained, setup, server):
    local = thresher(["classifier", "evaluate", str(setup["root"] / "model" / "model.bin"), str(setup["labels"]),
                      "--json"], server)
    for data in (f"s3://{BUCKET}/labels/domain.jsonl", f"s3://{BUCKET}/labels"):
        remote = thresher(["classifier", "evaluate", f"s3://{BUCKET}/models/domain/model.bin", data, "--json"], server)
        assert json.loads(remote.stdout) == json.loads(local.stdout)
    report = json.loads(local.stdout)
    assert report["examples"] > 20 and report["accuracy"] > 0.8, report


def test_evaluate_names_a_missing_s3_model_or_data(trained, server):
    missing = thresher(["classifier", "evaluate", f"s3://{BUCKET}/models/none/model.bin",
                        f"s3://{BUCKET}/labels"], server, check=False)
    assert missing.returncode != 0 and f"s3://{BUCKET}/models/none/model.bin" in missing.stderr
    assert "does not exist" in missing.stderr
    empty = thresher(["classifier", "evaluate", f"s3://{BUCKET}/models/domain/model.bin",
                      f"s3://{BUCKET}/nothing-here"], server, check=False)
    assert empty.returncode != 0 and "give a .jsonl[.gz] or .parquet file" in empty.stderr


def test_classify_stage_scores_with_an_s3_model_as_with_the_local_one(trained, setup, server, fs):
    root, scores = setup["root"], {}
    for where, model, feeds, out in (
            ("local", root / "model" / "model.bin", setup["feeds"], root / "run-local"),
            ("s3", f"s3://{BUCKET}/models/domain/model.bin", f"s3://{BUCKET}/feeds/newswire.jsonl",
             f"s3://{BUCKET}/run")):
        config = root / f"run-{where}.yaml"
        config.write_text(yaml.safe_dump({
            "output": str(out), "inputs": [{"path": str(feeds), "format": "jsonl", "source": "newswire"}],
            "stages": [{"classify": {"domain_model": str(model)}}]}))
        thresher(["run", str(config), "--workers", "1", "--no-progress"], server)
        fs.invalidate_cache()
        parts = ([p.read_bytes() for p in sorted((out / "01-classify").glob("*.parquet"))] if where == "local" else
                 [fs.cat_file(p) for p in sorted(fs.glob(f"{BUCKET}/run/01-classify/*.parquet"))])
        assert parts, where
        tables = [pq.read_table(io.BytesIO(part)) for part in parts]
        scores[where] = [(row["id"], row["domain"], row["domain_score"]) for t in tables for row in t.to_pylist()]
    assert scores["s3"] == scores["local"]
    assert {domain for _, domain, _ in scores["local"]} <= {"financial", "general"}
    assert len(scores["local"]) > 0 and all(score is not None for _, _, score in scores["local"])
