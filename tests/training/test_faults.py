"""Trainer faults: a run killed with SIGKILL at a random step resumes to the uninterrupted loss
curve bitwise; a truncated or corrupt latest checkpoint is detected (`_complete.json`: size and
crc32 of every file), set aside with a warning, and the previous one resumed from."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from pipeline.cli import main
from tests.pipeline import test_s3
from tests.pipeline.conftest import free_port
from tests.training.test_train import (
    DAPT,
    REPO,
    SMALL,
    STEPS,
    TINY,
    command,
    descendants,
    records,
    thresher_train,
    train_in_process,
)
from training.checkpoint import MARKER, complete_checkpoints, verify, write_marker

server, fs = test_s3.server, test_s3.fs  # moto's S3 server and an s3fs client, as fixtures here


@pytest.fixture(scope="module")
def reference(manifest_path, tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted 2-rank run: checkpoints at steps 4, 8 and 12."""
    sets = [f"data.manifest={manifest_path}", *SMALL]
    output = tmp_path_factory.mktemp("faults") / "reference"
    thresher_train(TINY, output, 2, sets)
    return output, sets


def assert_same_curve(reference: Path, output: Path, steps) -> None:
    (expected, expected_evals), (got, got_evals) = records(reference), records(output)
    for step in steps:
        assert got[step]["loss"] == expected[step]["loss"], step
        assert got[step]["grad_norm"] == expected[step]["grad_norm"], step
    assert got_evals[STEPS]["eval"] == expected_evals[STEPS]["eval"]


def damage(path: Path, how: str) -> str:
    """Truncate the file to half, or flip one byte in its middle (size unchanged)."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
        return "truncated"
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)
    return "corrupt bytes"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path, how):
    output, (ref, sets) = tmp_path / how, reference
    for step in ("step-000004", "step-000008"):
        shutil.copytree(ref / "checkpoints" / step, output / "checkpoints" / step)
    bad = output / "checkpoints" / "step-000008"
    shard = max((p for p in bad.iterdir() if p.suffix == ".distcp"), key=lambda p: p.stat().st_size)
    why = damage(shard, how)

    stdout = thresher_train(TINY, output, 2, sets)
    warning = [line for line in stdout.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(bad) in warning[0] and shard.name in warning[0] and why in warning[0], stdout
    assert "moved to step-000008.corrupt" in warning[0]
    assert "step-000004 (step 4, 32 samples consumed)" in stdout
    assert_same_curve(ref, output, range(5, STEPS + 1))
    assert [p.name for p in complete_checkpoints(output / "checkpoints")] == ["step-000004", "step-000008",
                                                                              "step-000012"]
    assert (output / "checkpoints" / "step-000008.corrupt").is_dir()


@pytest.mark.slow
def test_a_run_killed_at_a_random_step_resumes_to_the_same_curve_bitwise(reference, tmp_path):
    ref, sets = reference
    kill_after = random.Random(6).randint(4, STEPS - 1)  # seeded (5): after a checkpoint, before the end
    output = tmp_path / "killed"
    process = subprocess.Popen(command(TINY, output, 2, sets), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and kill_after not in logged_steps(output):
        time.sleep(0.02)
    assert process.poll() is None, f"the run ended before step {kill_after} was logged"
    for pid in [process.pid, *descendants(process.pid)]:  # the launcher and every rank, mid-run
        os.kill(pid, signal.SIGKILL)
    process.wait()

    stdout = thresher_train(TINY, output, 2, sets)
    resumed = re.search(r"resumed from \S+ \(step (\d+),", stdout)
    assert resumed, stdout
    # From the last checkpoint before the kill (the kill may land a step late, no more).
    assert int(resumed.group(1)) <= kill_after + 1 and int(resumed.group(1)) < STEPS, (kill_after, stdout)
    assert_same_curve(ref, output, range(1, STEPS + 1))  # before the kill: same run; after: resumed


def logged_steps(output: Path) -> set[int]:
    path = output / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {json.loads(line)["step"] for line in lines[:-1] if "eval" not in line}  # last may be partial


@pytest.fixture
def one_rank_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_verify_names_what_is_wrong_and_accepts_unmarked_checkpoints(tmp_path, one_rank_group):
    folder = tmp_path / "step-000004"
    folder.mkdir()
    for name, size in ((".metadata", 10), ("__0_0.distcp", 1000), ("__1_0.distcp", 900)):
        (folder / name).write_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
    assert verify(folder) is None  # no marker: a checkpoint from before markers, unverified
    write_marker(folder)
    assert sorted(json.loads((folder / MARKER).read_text())["files"]) == [".metadata", "__0_0.distcp",
                                                                         "__1_0.distcp"]
    assert verify(folder) is None
    damage(folder / "__1_0.distcp", "flip")
    assert verify(folder) == "__1_0.distcp fails its crc32 check: corrupt bytes"
    damage(folder / "__0_0.distcp", "truncate")
    assert verify(folder) == "__0_0.distcp is 500 bytes, 1000 expected: truncated"  # the first, by name
    (folder / "__0_0.distcp").unlink()
    assert verify(folder) == "__0_0.distcp is missing"
    (folder / MARKER).write_text('{"files": ')
    assert verify(folder) == f"{MARKER} is unreadable (JSONDecodeError)"


@pytest.mark.slow
def test_with_no_intact_checkpoint_left_the_run_starts_from_scratch(reference, tmp_path, capsys):
    ref, sets = reference
    bad = tmp_path / "checkpoints" / "step-000004"
    shutil.copytree(ref / "checkpoints" / "step-000004", bad)
    damage(bad / ".metadata", "flip")
    stdout = train_in_process(TINY, tmp_path, [*sets, "train.steps=4", "eval.every=4"], capsys)
    assert f"warning: no intact checkpoint left in {tmp_path / 'checkpoints'}; starting from scratch" in stdout
    assert "resumed from" not in stdout and sorted(records(tmp_path)[0]) == [1, 2, 3, 4]


@pytest.mark.slow
def test_init_from_a_corrupt_step_directory_fails_with_one_line(reference, tmp_path, capsys):
    ref, sets = reference
    bad = tmp_path / "pretrain" / "step-000012"
    shutil.copytree(ref / "checkpoints" / "step-000012", bad)
    damage(bad / ".metadata", "truncate")
    args = ["train", str(DAPT), "--output", str(tmp_path / "dapt"), "--set", sets[0],
            "--set", f"checkpoint.init_from={bad}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"thresher: error: checkpoint.init_from: {bad} is corrupt (.metadata is ") and "\n" not in err


def test_on_an_object_store_the_marker_commits_and_sizes_are_checked(one_rank_group):
    """memory:// stands in for S3 here (the end-to-end test below uses moto's server): a folder
    without `_complete.json` is a save cut short; the marker lists sizes, which `verify` checks."""
    import fsspec

    from pipeline import storage

    folder = "memory://ckpt-unit/checkpoints"
    mem = fsspec.filesystem("memory")
    for step in (4, 8):
        for name, size in ((".metadata", 10), ("__0_0.distcp", 1000), ("__1_0.distcp", 900)):
            mem.pipe_file(f"/ckpt-unit/checkpoints/step-{step:06d}/{name}", bytes(size))
    write_marker(f"{folder}/step-000004")
    assert complete_checkpoints(folder) == [f"{folder}/step-000004"]  # step 8 has no marker yet
    marker = json.loads(storage.read_bytes(f"{folder}/step-000004/{MARKER}"))
    assert marker == {"files": {".metadata": {"bytes": 10}, "__0_0.distcp": {"bytes": 1000},
                                "__1_0.distcp": {"bytes": 900}}}
    assert verify(f"{folder}/step-000004") is None
    mem.pipe_file("/ckpt-unit/checkpoints/step-000004/__1_0.distcp", bytes(450))
    assert verify(f"{folder}/step-000004") == "__1_0.distcp is 450 bytes, 900 expected: truncated"
    mem.rm_file("/ckpt-unit/checkpoints/step-000004/__0_0.distcp")
    assert verify(f"{folder}/step-000004") == "__0_0.distcp is missing"
    mem.rm("/ckpt-unit", recursive=True)


def s3_checkpoints(fs, prefix: str) -> list[str]:
    """Step folders under `prefix` that hold a marker (complete), by name."""
    fs.invalidate_cache()
    names = [p.rsplit("/", 1)[1] for p in fs.ls(prefix) if fs.isfile(f"{p}/{MARKER}")]
    return sorted(n for n in names if n.removeprefix("step-").isdigit())


@pytest.mark.slow
def test_checkpoints_on_s3_resume_on_a_fresh_node(reference, server, fs, tmp_path):
    """`checkpoint.folder: s3://...` with 2 ranks against moto's server: every checkpoint is
    committed by its marker and pruned to `keep`; a run on a fresh node (an empty `output`)
    resumes from S3 to the uninterrupted local run's curve bitwise, setting a truncated
    checkpoint aside and saving over a save that was cut short; `init_from` reads S3 too."""
    ref, sets = reference
    fs.mkdir("checkpoints")
    url, prefix = "s3://checkpoints/tiny", "checkpoints/tiny"
    s3_sets = [*sets, f"checkpoint.folder={url}", "checkpoint.keep=2"]

    stdout = thresher_train(TINY, tmp_path / "node-a", 2, s3_sets, server)
    assert f"saved checkpoint {url}/step-000012" in stdout
    assert s3_checkpoints(fs, prefix) == ["step-000008", "step-000012"]  # step 4 pruned
    assert not (tmp_path / "node-a" / "checkpoints").exists()
    marker = json.loads(fs.cat_file(f"{prefix}/step-000012/{MARKER}"))["files"]
    assert sorted(marker) == [".metadata", "__0_0.distcp", "__1_0.distcp", "metrics.jsonl"]
    assert all(fs.size(f"{prefix}/step-000012/{name}") == entry["bytes"] for name, entry in marker.items())
    assert_same_curve(ref, tmp_path / "node-a", range(1, STEPS + 1))

    # The newest checkpoint loses half a shard: set aside, and the run goes on from step 8.
    shard = f"{prefix}/step-000012/__1_0.distcp"
    fs.pipe_file(shard, fs.cat_file(shard)[: marker["__1_0.distcp"]["bytes"] // 2])
    stdout = thresher_train(TINY, tmp_path / "node-b", 2, s3_sets, server)
    warning = [line for line in stdout.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and f"{url}/step-000012 is corrupt (__1_0.distcp is " in warning[0], stdout
    assert "moved to step-000012.corrupt" in warning[0]
    assert f"resumed from {url}/step-000008 (step 8, 64 samples consumed)" in stdout
    assert "restored metrics.jsonl up to step 8 from the checkpoint" in stdout
    assert_same_curve(ref, tmp_path / "node-b", range(1, STEPS + 1))  # the history came with the checkpoint
    assert "per-domain validation perplexity, step 0 -> step 12:" in stdout
    assert s3_checkpoints(fs, prefix) == ["step-000008", "step-000012"]
    assert fs.size(f"{prefix}/step-000012.corrupt/__1_0.distcp") == marker["__1_0.distcp"]["bytes"] // 2

    # A save cut short before its marker: not a checkpoint; the next save of that step replaces it.
    fs.rm_file(f"{prefix}/step-000012/{MARKER}")
    stdout = thresher_train(TINY, tmp_path / "node-c", 2, s3_sets, server)
    assert "warning:" not in stdout and f"resumed from {url}/step-000008 (step 8," in stdout
    assert_same_curve(ref, tmp_path / "node-c", range(9, STEPS + 1))
    assert s3_checkpoints(fs, prefix) == ["step-000008", "step-000012"]

    dapt_sets = [sets[0], "train.steps=2", "train.warmup_steps=1", "train.global_batch_size=8",
                 "train.micro_batch_size=4", "eval.samples=8", "checkpoint.every=2", f"checkpoint.init_from={url}"]
    stdout = thresher_train(DAPT, tmp_path / "dapt", 2, dapt_sets, server)
    assert f"initialised weights from {url}/step-000012" in stdout
    pretrained = records(ref)[1][STEPS]["eval"]
    for domain, result in records(tmp_path / "dapt")[1][0]["eval"].items():
        assert result["loss"] == pytest.approx(pretrained[domain]["loss"], rel=1e-6)


@pytest.mark.slow
def test_two_nodes_without_a_shared_filesystem_checkpoint_to_s3_and_resume(reference, server, fs, tmp_path):
    """Two torchrun "nodes" (one rank each, static rendezvous), each with an output folder of its
    own as on machines without a shared filesystem, checkpoints on S3: the losses are the
    one-node 2-rank run's bitwise; nodes replaced by fresh ones resume from S3."""
    ref, sets = reference
    fs.mkdir("two-nodes")
    url = "s3://two-nodes/tiny"
    node_sets = [*sets, f"checkpoint.folder={url}", "checkpoint.keep=2"]

    def run_two_nodes(outputs: tuple[Path, Path]) -> str:
        port = free_port()
        launches = [subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
             f"--node-rank={rank}", "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "training.train",
             str(TINY), "--output", str(output), *(f"--set={s}" for s in node_sets)],
            cwd=REPO, env=server, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for rank, output in enumerate(outputs)]
        logs = [launch.communicate(timeout=600)[0] for launch in launches]
        assert [launch.returncode for launch in launches] == [0, 0], "\n".join(logs)
        return logs[0]

    first = (tmp_path / "node-a", tmp_path / "node-b")
    run_two_nodes(first)
    assert_same_curve(ref, first[0], range(1, STEPS + 1))
    assert not (first[1] / "metrics.jsonl").exists() and not (first[1] / "checkpoints").exists()
    assert s3_checkpoints(fs, "two-nodes/tiny") == ["step-000008", "step-000012"]

    fs.rm("two-nodes/tiny/step-000012", recursive=True)  # lost, as if the job died before it
    fresh = (tmp_path / "node-c", tmp_path / "node-d")
    stdout = run_two_nodes(fresh)
    assert f"resumed from {url}/step-000008 (step 8, 64 samples consumed)" in stdout
    assert_same_curve(ref, fresh[0], range(1, STEPS + 1))


def test_an_unwritable_checkpoint_folder_fails_before_the_first_step(tmp_path, one_rank_group):
    from training.checkpoint import Checkpointer, unwritable

    assert unwritable("memory://writable/checkpoints") is None
    (tmp_path / "a-file").write_text("")
    problem = unwritable(tmp_path / "a-file" / "checkpoints")
    assert problem.startswith(f"checkpoint.folder: cannot write to {tmp_path / 'a-file' / 'checkpoints'} (")
    with pytest.raises(ValueError, match=r"checkpoint\.folder: cannot write to"):
        Checkpointer(tmp_path / "a-file" / "checkpoints", 2).check_writable()


@pytest.mark.slow
def test_a_missing_bucket_is_one_line_before_any_rank_starts(reference, server):
    _, sets = reference
    done = subprocess.run(command(TINY, Path("unused"), 2, [*sets, "checkpoint.folder=s3://no-such-bucket/run"]),
                          cwd=REPO, env=server, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("thresher: error: checkpoint.folder: cannot write to s3://no-such-bucket/run (")
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout


@pytest.mark.slow
def test_storage_options_alone_reach_the_checkpoint_bucket(reference, server, fs, tmp_path):
    """No AWS variables in the environment: the endpoint and keys come from the config's
    `storage_options`, reach every rank, and never reach a file in `output`."""
    ref, sets = reference
    fs.mkdir("with-options")
    env = {k: v for k, v in server.items() if not k.startswith("AWS_")}
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": server["AWS_ENDPOINT_URL"],
                                                                        "region_name": "us-east-1"}}
    output = tmp_path / "out"
    stdout = thresher_train(TINY, output, 2, [*sets, "checkpoint.folder=s3://with-options/tiny",
                                              f"storage_options={json.dumps(options)}"], env)
    assert "saved checkpoint s3://with-options/tiny/step-000012" in stdout
    assert s3_checkpoints(fs, "with-options/tiny") == ["step-000004", "step-000008", "step-000012"]
    assert_same_curve(ref, output, range(1, STEPS + 1))
    for path in output.rglob("*"):
        assert not path.is_file() or server["AWS_ENDPOINT_URL"].encode() not in path.read_bytes(), path
