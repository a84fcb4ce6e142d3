"""Inputs, models and output on S3: a real S3-compatible server (moto's standalone server on
127.0.0.1, started and stopped here) serves the demo sample and a small domain classifier; a
small pipeline (WARC + JSONL read, extract, language, url_blocklist, gopher_quality,
exact_dedup, MinHash dedup, classify, select, mix, tokenize) runs once locally and once with
every path on s3://, and every Parquet part and token shard must be byte-identical. Then a run
killed with SIGKILL mid-stage and rerun gives the same bytes, `thresher stats s3://...` writes its
report, `thresher trace s3://...` answers as on local disk, `thresher train` reads the shards from
s3://, and the secret given in `storage_options` appears in no output file and no log.

Every run is a `thresher` subprocess (its Dask workers inherit the server's environment).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.pipeline.conftest import free_port

pytest.importorskip("moto")
s3fs = pytest.importorskip("s3fs")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BUCKET = "thresher"
SECRET = f"not-a-real-secret-{uuid.uuid4().hex}"
DATA_SUFFIXES = (".parquet", ".bin", ".idx")

CONFIG = """\
output: ${OUT}
storage_options: OPTIONS
seed: 0
inputs:
  - {path: "${SAMPLE}/crawl/*.warc.gz", format: warc, source: crawl, storage_options: OPTIONS}
  - {path: "${SAMPLE}/feeds/*.jsonl", format: jsonl, source: newswire, domain: financial}
read: {max_docs_per_part: 16}
guards: {max_quarantined_files: 1}  # the sample's truncated WARC
stages:
  - extract: {}
  - language: {keep: [en], min_score: 0.5}
  - url_blocklist: {domains_file: "${SAMPLE}/lists/blocked_domains.txt"}
  - gopher_quality: {}
  - exact_dedup: {}
  - minhash_signatures: {}
  - lsh_buckets: {}
  - duplicate_clusters: {}
  - remove_duplicates: {}
  - classify: {domain_model: "${MODELS}/domain/model.bin"}
  - select: {column: domain_score, keep_top: 0.9}
  - mix: {targets: {financial: 0.51, general: 0.49}, max_epochs: 4, seed: 0}
  - tokenize: {train: {vocab_size: 1000, model_type: bpe}, valid_fraction: 0.1}
"""


@pytest.fixture(scope="module")
def server():
    """moto's S3 server on a free port; yields the environment that points clients at it."""
    port = free_port()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def fs(server):
    return s3fs.S3FileSystem(key="testing", secret="testing",
                             client_kwargs={"endpoint_url": server["AWS_ENDPOINT_URL"]})


@pytest.fixture(scope="module")
def data(fs, tmp_path_factory):
    """The demo sample and a small domain classifier, locally and uploaded to the bucket."""
    from filters.classifier import ClassifierConfig, train_classifier
    from pipeline.demo.crawl import write_sample
    from pipeline.demo.models import classifier_configs

    root = tmp_path_factory.mktemp("s3-data")
    sample = write_sample(root / "sample")
    raw = classifier_configs(sample)["domain"]
    # The default 2M hash buckets, as the demo trains it: a small matrix can come from reused heap
    # memory, and single-thread fastText leaves most of it uninitialised ("Encountered NaN" once
    # other tests had run in this process); a >32 MB one is always fresh, zeroed pages.
    train_classifier(ClassifierConfig.model_validate(raw), root / "models" / "domain")
    fs.mkdir(BUCKET)
    fs.put(str(sample), f"{BUCKET}/sample", recursive=True)
    fs.put(str(root / "models"), f"{BUCKET}/models", recursive=True)
    # The secret is a real storage option (moto accepts any); it must never be written anywhere.
    (root / "local.yaml").write_text(CONFIG.replace("OPTIONS", "null"))
    (root / "s3.yaml").write_text(CONFIG.replace("OPTIONS", f'{{key: testing, secret: "{SECRET}"}}'))
    return {"root": root, "sample": str(sample), "models": str(root / "models")}


def run_env(server: dict, data: dict, where: str, out: str) -> dict:
    if where == "local":
        return {**server, "OUT": out, "SAMPLE": data["sample"], "MODELS": data["models"]}
    return {**server, "OUT": out, "SAMPLE": f"s3://{BUCKET}/sample", "MODELS": f"s3://{BUCKET}/models"}


def thresher(args: list[str], env: dict, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def run_args(data: dict, where: str) -> list[str]:
    return ["run", str(data["root"] / f"{where}.yaml"), "--workers", "2"]


def local_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def s3_files(fs, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {p[len(prefix) + 1:]: fs.cat_file(p) for p in sorted(fs.find(prefix))}


def data_files(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k.endswith(DATA_SUFFIXES)}


@pytest.fixture(scope="module")
def local_run(server, data):
    out = data["root"] / "local"
    log = thresher(run_args(data, "local"), run_env(server, data, "local", str(out)))
    return local_files(out), log


@pytest.fixture(scope="module")
def s3_run(server, data, fs):
    log = thresher(run_args(data, "s3"), run_env(server, data, "s3", f"s3://{BUCKET}/out"))
    return s3_files(fs, f"{BUCKET}/out"), log


def test_every_part_and_shard_on_s3_equals_the_local_run(local_run, s3_run):
    local, remote = local_run[0], s3_run[0]
    # parts, rejected parts, work files and the views of the stages that only remove documents
    assert any(k.endswith(".bin") for k in local) and sum(k.endswith(".parquet") for k in local) > 40
    assert any("/_views/" in k for k in local)
    assert data_files(remote) == data_files(local)
    for stage in sorted(k for k in local if k.endswith("/_manifest.json")):
        assert json.loads(remote[stage])["parts"] == json.loads(local[stage])["parts"], stage
    assert "13-tokenize/manifest.json" in remote and "stats.json" in remote


def test_no_secret_in_any_output_or_log(s3_run, fs):
    files, log = s3_run
    assert "storage_options" in files["config.yaml"].decode() and "<redacted>" in files["config.yaml"].decode()
    leaked = [name for name, body in files.items() if SECRET.encode() in body]
    assert not leaked and SECRET not in log


def test_killed_run_reruns_to_the_same_bytes(server, data, fs, local_run):
    out = f"{BUCKET}/killed"
    env = run_env(server, data, "s3", f"s3://{out}")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *run_args(data, "s3")], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # kill once the extract stage has committed a part, while the run goes on
        deadline = time.monotonic() + 120
        while fs.invalidate_cache() or not fs.glob(f"{out}/01-extract/_stats/*.json"):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    fs.invalidate_cache()
    assert not fs.exists(f"{out}/stats.json")
    # An object a killed task left behind, never committed: the rerun must not count it.
    stages = [d for d in sorted(fs.ls(out)) if re.match(r"\d\d-", d.rsplit("/", 1)[-1])]
    unfinished = [d for d in stages if fs.exists(f"{d}/_stage.json") and not fs.exists(f"{d}/_manifest.json")]
    garbage = [f"{d}/{name}" for d in unfinished[:1] for name in ("part-99999-0000.parquet",
                                                                   "rejected/part-99999-0000.parquet")]
    for path in garbage:
        fs.pipe_file(path, b"garbage")
    thresher(run_args(data, "s3"), env)
    after = s3_files(fs, out)
    assert data_files(after) == data_files(local_run[0])
    assert not any(path.removeprefix(f"{out}/") in after for path in garbage)


def test_stats_of_a_run_on_s3_equal_the_local_run(server, data, local_run, s3_run, fs):
    thresher(["stats", f"s3://{BUCKET}/out", "--workers", "1"], server)
    thresher(["stats", str(data["root"] / "local"), "--workers", "1"], server)
    remote = json.loads(fs.cat_file(f"{BUCKET}/out/report/stats.json"))
    local = json.loads((data["root"] / "local" / "report" / "stats.json").read_text())
    assert remote["input"]["path"] == f"s3://{BUCKET}/out"
    for report in (remote, local):  # where the tokenizer lives is the one difference
        assert report["shards"]["tokenizer"].pop("path").endswith("/13-tokenize/tokenizer.model")
    for key in ("funnel", "removals", "mixture", "shards", "dedup"):
        assert remote[key] == local[key], key
    assert fs.exists(f"{BUCKET}/out/report/report.html") and fs.exists(f"{BUCKET}/out/report/DATASET_CARD.md")


def test_trace_on_s3_equals_the_local_trace(server, data, local_run, s3_run):
    """`thresher trace s3://...` answers as on local disk (only where the files live differs)."""
    answers = []
    for out in (f"s3://{BUCKET}/out", str(data["root"] / "local")):
        answer = json.loads(_stdout(["trace", out, "--shard", "financial/shard-00000", "--index", "0", "--json"],
                                    server))
        assert answer.pop("output") == out and answer["tokens"]["sequences"]
        answer["origin"].pop("file")
        answers.append(answer)
    assert answers[0] == answers[1]


def _stdout(args: list[str], env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_train_reads_shards_from_s3(server, s3_run, tmp_path):
    sets = ["train.steps=3", "train.warmup_steps=1", "train.global_batch_size=4", "train.micro_batch_size=2",
            "checkpoint.every=3", "eval.every=3", "eval.samples=4", "log.every=1", f"data.manifest=s3://{BUCKET}/out"]
    env = {**server, "THRESHER_CACHE_DIR": str(tmp_path / "cache")}
    thresher(["train", str(REPO / "configs" / "train-tiny.yaml"), "--nproc", "1", "--output", str(tmp_path / "train"),
              *(f"--set={s}" for s in sets)], env)
    planned = subprocess.run([sys.executable, "-m", "pipeline.cli", "plan", "--manifest", f"s3://{BUCKET}/out",
                              "--json"], cwd=REPO, env=server, capture_output=True, text=True, timeout=60)
    plan = json.loads(planned.stdout)
    shards = json.loads(s3_run[0]["13-tokenize/manifest.json"])
    assert plan["tokens"] == sum(d["tokens"] for d in shards["domains"].values())
    metrics = (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()
    assert any('"loss"' in line for line in metrics)
    assert any(p.suffix == ".bin" for p in (tmp_path / "cache").rglob("*"))  # shards were staged locally


def test_a_stale_stage_folder_moves_aside_on_s3(server, fs):
    """No rename on S3: the folder is copied, then deleted (its manifest first)."""
    from pipeline import storage
    from pipeline.io import write_bytes, write_json
    from pipeline.stale import STALE, clear_stale

    bucket = f"stale-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    out = f"s3://{bucket}/out"
    storage.configure(out, {"key": "testing", "secret": "testing",
                            "client_kwargs": {"endpoint_url": server["AWS_ENDPOINT_URL"]}})
    for name in ("00-read", "01-min_chars"):
        write_json({"fingerprint": name}, storage.join(out, name, "_stage.json"))
        write_bytes(b"part", storage.join(out, name, "part-00000.parquet"))
        write_json({"fingerprint": name, "parts": ["part-00000.parquet"]}, storage.join(out, name, "_manifest.json"))
    moved = clear_stale(out, [("00-read", "00-read"), ("01-max_chars", "x")], run_id="r1")
    assert moved == [f"{out}/{STALE}/r1/01-min_chars"]
    assert storage.listdir(out) == ["00-read", STALE]
    assert storage.walk_files(moved[0]) == ["_manifest.json", "_stage.json", "part-00000.parquet"]
    assert storage.read_bytes(f"{moved[0]}/part-00000.parquet") == b"part"
