"""Same input + config => the same bytes: on 1 or 2 workers, and after `thresher run` is
killed (SIGKILL) in the middle of the dedup stages and run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO, shared_path
from tests.dedup.conftest import digest_outputs, recipe_stages, reuters_near_duplicates, run, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """configs/dedup.yaml's stages over real near-duplicates in two sources, in many small parts."""
    root = tmp_path_factory.mktemp("recipe")
    docs = reuters_near_duplicates(200, seed=3)
    plagiarism = shared_path("dedup_plagiarism_short_answers", "documents.jsonl")
    inputs = [write_jsonl(root / "wire.jsonl", docs) | {"domain": "financial"},
              {"path": str(plagiarism), "format": "jsonl", "source": "plagiarism"}]
    return {"inputs": inputs, "stages": recipe_stages(), "read": {"max_docs_per_part": 6}}


@pytest.fixture(scope="module")
def reference(client, recipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_workers")
    run(client, out, recipe["inputs"], recipe["stages"], read=recipe["read"])
    return digest_outputs(out)


def test_one_and_two_workers_give_identical_outputs(client1, recipe, reference, tmp_path):
    run(client1, tmp_path, recipe["inputs"], recipe["stages"], read=recipe["read"])
    assert digest_outputs(tmp_path) == reference
    assert any("remove_duplicates/rejected/" in k for k in reference)  # something was deduplicated
    assert any("exact_dedup/rejected/" in k for k in reference)


def _run_until(config, output, condition, timeout: float = 300) -> bool:
    """Start `thresher run`; SIGKILL its process group once `condition()` holds. Returns
    whether it was killed (False: it finished first)."""
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(config), "--output", str(output),
           "--workers", "2", "--no-progress"]
    log = (output.parent / "log.txt").open("ab")
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if condition():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
        assert proc.returncode == 0, (output.parent / "log.txt").read_text()[-3000:]
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_killed_mid_stage_and_resumed_gives_identical_outputs(recipe, reference, tmp_path):
    config = tmp_path / "dedup.yaml"
    config.write_text(yaml.safe_dump({"output": str(tmp_path / "out"), **recipe}))
    out = tmp_path / "out"
    signatures = out / "02-minhash_signatures" / "signatures"
    killed = _run_until(config, out, lambda: signatures.exists() and any(signatures.iterdir()))
    assert killed and not (out / "02-minhash_signatures" / "_manifest.json").exists()
    # A second kill while the clusters are being computed (best effort: it may finish first).
    _run_until(config, out, lambda: (out / "04-duplicate_clusters" / "_stage.json").exists())
    subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(config), "--output", str(out),
                    "--workers", "2", "--no-progress"], cwd=REPO, check=True, capture_output=True)
    assert digest_outputs(out) == reference
