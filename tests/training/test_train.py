"""End to end: `thresher train` with 2 CPU ranks (gloo, FSDP2) on real shards; kill and resume
bitwise; a 2-rank checkpoint resumed on 1 rank; domain adaptation from a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from training.checkpoint import complete_checkpoints
from training.config import TrainOptions
from training.train import lr_factor

REPO = Path(__file__).resolve().parents[2]
TINY, DAPT = REPO / "configs" / "train-tiny.yaml", REPO / "configs" / "dapt-tiny.yaml"
STEPS = 12
SMALL = [f"train.steps={STEPS}", "train.warmup_steps=2", "train.global_batch_size=8", "train.micro_batch_size=2",
         "checkpoint.every=4", "checkpoint.keep=10", "eval.every=6", "eval.samples=8", "log.every=4"]


def command(config: Path, output: Path, nproc: int, sets: list[str]) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "train", str(config), "--nproc", str(nproc),
            "--output", str(output), *(f"--set={s}" for s in sets)]


def thresher_train(config: Path, output: Path, nproc: int, sets: list[str], env: dict | None = None) -> str:
    done = subprocess.run(command(config, output, nproc, sets), cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def train_in_process(config: Path, output: Path, sets: list[str], capsys) -> str:
    """`thresher train --nproc 1` runs in the calling process (a one-rank gloo group)."""
    capsys.readouterr()
    assert main(["train", str(config), "--output", str(output), *(f"--set={s}" for s in sets)]) == 0
    return capsys.readouterr().out


def records(output: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """Per step, the last training record and the last validation record in metrics.jsonl."""
    steps, evals = {}, {}
    for line in (output / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        (evals if "eval" in record else steps)[record["step"]] = record
    return steps, evals


def descendants(pid: int) -> list[int]:
    """Child processes, recursively (torchrun starts each rank in a session of its own, so a
    process-group kill would miss them)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    direct = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [p for child in direct for p in (child, *descendants(child))]


@pytest.fixture(scope="module")
def full_run(manifest_path, tmp_path_factory) -> tuple[Path, str, list[str]]:
    sets = [f"data.manifest={manifest_path}", *SMALL]
    output = tmp_path_factory.mktemp("train") / "full"
    return output, thresher_train(TINY, output, 2, sets), sets


@pytest.mark.slow
def test_two_ranks_shard_the_parameters_and_the_loss_falls(full_run):
    output, stdout, _ = full_run
    run = json.loads((output / "run.json").read_text())
    assert run["world_size"] == 2 and len(run["params_per_rank"]) == 2
    assert sum(run["params_per_rank"]) == run["params"]
    assert all(abs(held - run["params"] / 2) < 0.02 * run["params"] for held in run["params_per_rank"])
    assert f"held per rank {run['params_per_rank']}" in stdout
    steps, evals = records(output)
    assert sorted(steps) == list(range(1, STEPS + 1))
    assert steps[STEPS]["loss"] < steps[1]["loss"] - 0.3
    for domain in ("financial", "general"):
        assert evals[STEPS]["eval"][domain]["loss"] < evals[0]["eval"][domain]["loss"]
    assert [p.name for p in complete_checkpoints(output / "checkpoints")] == ["step-000004", "step-000008",
                                                                              "step-000012"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_losses_bitwise(full_run, tmp_path):
    reference, _, sets = full_run
    output = tmp_path / "killed"
    process = subprocess.Popen(command(TINY, output, 2, sets), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not complete_checkpoints(output / "checkpoints") and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in [process.pid, *descendants(process.pid)]:  # the launcher and every rank, mid-run
        os.kill(pid, signal.SIGKILL)
    process.wait()
    # Resume from step 4 even if the run got further before the kill landed.
    for later in complete_checkpoints(output / "checkpoints")[1:]:
        shutil.rmtree(later)
    assert [p.name for p in complete_checkpoints(output / "checkpoints")] == ["step-000004"]

    stdout = thresher_train(TINY, output, 2, sets)
    assert "resumed from" in stdout and "step-000004 (step 4, 32 samples consumed)" in stdout
    (expected, expected_evals), (got, got_evals) = records(reference), records(output)
    for step in range(5, STEPS + 1):
        assert got[step]["loss"] == expected[step]["loss"], step
        assert got[step]["grad_norm"] == expected[step]["grad_norm"], step
    assert got_evals[STEPS]["eval"] == expected_evals[STEPS]["eval"]


@pytest.mark.slow
def test_a_two_rank_checkpoint_resumes_on_one_rank(full_run, tmp_path, capsys):
    reference, _, sets = full_run
    output = tmp_path / "one-rank"
    shutil.copytree(reference / "checkpoints" / "step-000004", output / "checkpoints" / "step-000004")
    stdout = train_in_process(TINY, output, sets, capsys)
    assert "1 rank(s) x 4 accumulation step(s)" in stdout and "(step 4, 32 samples consumed)" in stdout
    assert "restored metrics.jsonl up to step 4 from the checkpoint" in stdout  # no metrics.jsonl here
    expected, got = records(reference)[0], records(output)[0]
    assert sorted(got) == list(range(1, STEPS + 1))
    assert [got[step] for step in range(1, 5)] == [expected[step] for step in range(1, 5)]  # the history
    for step in range(5, STEPS + 1):  # same data, same math; only the reduction order differs
        assert got[step]["loss"] == pytest.approx(expected[step]["loss"], rel=1e-5), step


@pytest.mark.slow
def test_domain_adaptation_starts_from_the_weights_and_reports_perplexity(full_run, tmp_path, capsys):
    reference, _, sets = full_run
    output = tmp_path / "dapt"
    dapt_sets = [sets[0], "train.steps=12", "train.warmup_steps=4", "train.global_batch_size=8",
                 "train.micro_batch_size=4", "eval.samples=8", "eval.every=12", "checkpoint.every=12",
                 f"checkpoint.init_from={reference}"]
    stdout = train_in_process(DAPT, output, dapt_sets, capsys)
    assert f"initialised weights from {reference / 'checkpoints' / 'step-000012'}" in stdout
    steps, evals = records(output)
    # Weights only: validation before adapting equals the pre-trained model's last validation ...
    pretrained = records(reference)[1][STEPS]["eval"]
    for domain, result in evals[0]["eval"].items():
        assert result["loss"] == pytest.approx(pretrained[domain]["loss"], rel=1e-6)
    # ... with a fresh optimizer and a re-warmed schedule: step 1 runs at 1/warmup of the peak.
    assert steps[1]["lr"] == pytest.approx(1.5e-3 / 4)
    assert "per-domain validation perplexity, step 0 -> step 12:" in stdout
    before, after = evals[0]["eval"]["financial"]["ppl"], evals[12]["eval"]["financial"]["ppl"]
    assert f"{'financial':<16} {before:>10.2f} -> {after:>10.2f}" in stdout
    assert after < before


@pytest.mark.slow
def test_init_from_a_checkpoint_of_another_shape_names_the_weight(full_run, tmp_path, capsys):
    reference, _, sets = full_run
    args = ["train", str(DAPT), "--output", str(tmp_path), "--set", sets[0], "--set", "model.n_layers=3",
            "--set", f"checkpoint.init_from={reference}"]
    assert main(args) == 2
    assert "does not fit the model config: layers.2.attention_norm.weight is missing there" in capsys.readouterr().err


@pytest.mark.slow
def test_no_gloo_thread_outlives_a_two_rank_run(manifest_path, tmp_path):
    """gloo threads alive at interpreter exit aborted ranks after successful runs (SIGABRT,
    `terminate called without an active exception`) on a loaded machine: the process group
    must be gone, its threads joined, when `train()` returns."""
    sets = [f"data.manifest={manifest_path}", *SMALL, "train.steps=4", "eval.every=4", "checkpoint.every=4"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "tests.training.rank_threads", str(TINY), str(tmp_path), *sets],
                          cwd=REPO, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    reports = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("threads-*.json"))]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    for report in reports:
        assert not [name for name in report["threads"] if "gloo" in name], report


def test_schedule_warms_up_linearly_then_decays_to_ten_percent():
    opts = TrainOptions(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert [lr_factor(s, opts) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(10, opts) == pytest.approx(1.0)
    assert lr_factor(99, opts) == pytest.approx(0.1)
    assert lr_factor(55, opts) == pytest.approx(0.55, abs=0.02)
    assert all(lr_factor(s, opts) >= lr_factor(s + 1, opts) for s in range(10, 99))


def test_unfinished_checkpoints_are_ignored(tmp_path):
    for name in ("step-000004", "step-000008.tmp", "step-000012"):
        (tmp_path / name).mkdir()
    (tmp_path / "step-000004" / ".metadata").write_text("")
    (tmp_path / "step-000008.tmp" / ".metadata").write_text("")
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-000004"]


def test_train_with_a_missing_manifest_exits_2_naming_the_setting(tmp_path, capsys):
    assert main(["train", str(TINY), "--output", str(tmp_path), "--set", f"data.manifest={tmp_path}/none"]) == 2
    assert "data.manifest:" in capsys.readouterr().err
