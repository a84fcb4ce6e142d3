"""`configs/train-slurm.sbatch` on a real one-node Slurm cluster (tests/pipeline/test_slurm.py
starts munged, slurmctld and slurmd): the job's two ranks train to the losses of the same
2-rank run started locally, bitwise, also when the job is cancelled (as a preemption would) and
submitted again, which resumes from its checkpoint."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests.pipeline import test_slurm
from tests.training.test_train import REPO, SMALL, STEPS, TINY, records, thresher_train
from training.checkpoint import complete_checkpoints

slurm = test_slurm.slurm  # the one-node cluster, as a fixture here

SCRIPT = REPO / "configs" / "train-slurm.sbatch"


def submit(env: dict, tools: dict, args: list[str], log) -> str:
    """Submit the script with `args`; the job id."""
    done = subprocess.run([tools["sbatch"], "--parsable", "--nodes=1", "--cpus-per-task=2", "--mem=1800M",
                           f"--output={log}", str(SCRIPT), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def wait_for(env: dict, tools: dict, job: str, until=lambda: False) -> None:
    """Until the job has left the queue, or `until()` holds."""
    deadline = time.monotonic() + 300
    while any(j == job for j, _, _ in test_slurm._squeue(env, tools)) and not until():
        assert time.monotonic() < deadline, f"job {job} still queued or running"
        time.sleep(0.1)


@pytest.mark.slow
def test_the_sbatch_script_trains_as_a_local_run_and_resumes_after_scancel(slurm, manifest_path, tmp_path):
    env, tools = slurm
    env = {**env, "PYTHONPATH": str(REPO), "THRESHER_PYTHON": sys.executable, "NPROC_PER_NODE": "2",
           "MASTER_PORT": str(test_slurm.free_port())}
    sets = [f"data.manifest={manifest_path}", *SMALL]
    thresher_train(TINY, tmp_path / "local", 2, sets)

    output = tmp_path / "slurm"
    args = [str(TINY), "--output", str(output), *(f"--set={s}" for s in sets)]
    job = submit(env, tools, args, tmp_path / "job-1.out")
    wait_for(env, tools, job, until=lambda: bool(complete_checkpoints(output / "checkpoints")))
    subprocess.run([tools["scancel"], job], env=env, check=True, timeout=30)  # as a preemption would
    wait_for(env, tools, job)
    log = (tmp_path / "job-1.out").read_text()
    assert "2 rank(s)" in log, log[-3000:]
    for later in complete_checkpoints(output / "checkpoints")[1:]:  # resume from step 4 even if it got further
        shutil.rmtree(later)

    job = submit(env, tools, args, tmp_path / "job-2.out")
    wait_for(env, tools, job)
    log = (tmp_path / "job-2.out").read_text()
    assert "step-000004 (step 4, 32 samples consumed)" in log, log[-3000:]
    expected, got = records(tmp_path / "local")[0], records(output)[0]
    for step in range(1, STEPS + 1):
        assert got[step]["loss"] == expected[step]["loss"], step
        assert got[step]["grad_norm"] == expected[step]["grad_norm"], step
    assert [p.name for p in complete_checkpoints(output / "checkpoints")][-1] == "step-000012"
