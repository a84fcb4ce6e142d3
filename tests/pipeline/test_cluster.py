"""Batch-job clusters without a batch system: the job scripts dask-jobqueue writes from the
`cluster:` section, the command line's refusals, and what a user sees when `sbatch` refuses the
jobs or their workers never arrive (fake sbatch/scancel on PATH). tests/pipeline/test_slurm.py
runs the real thing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dask
import pytest

from pipeline.cli import main
from pipeline.cluster import job_config, job_queue_client, make_cluster
from pipeline.config import parse_config
from pipeline.options import ClusterError
from tests.conftest import REPO

BASE = {"output": "out/x", "inputs": [{"path": "data/*.jsonl", "format": "jsonl", "source": "web"}]}
QUIET_ENV = ["export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False",
             "export DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=500ms",
             "export DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL=5s",
             "export DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL=500ms"]


def cluster_options(**section):
    section = {"kind": "slurm", "memory": "8GB", "dashboard_address": "127.0.0.1:0", **section}
    return parse_config({**BASE, "cluster": section}).cluster


def job_script(options) -> str:
    with dask.config.set(job_config(options)), make_cluster(options) as cluster:
        return cluster.job_script()


def test_slurm_job_script_has_directives_prologue_and_quiet_dask(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = job_script(cluster_options(
        cores=4, queue="cpu", account="proj", walltime="02:00:00", job_extra_directives=["--constraint=avx2"],
        job_script_prologue=["source /opt/venv/bin/activate"], log_directory=str(tmp_path / "logs")))
    lines = script.splitlines()
    for line in ("#SBATCH -J thresher-worker", "#SBATCH -p cpu", "#SBATCH -A proj", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=8G", "#SBATCH -t 02:00:00", "#SBATCH --constraint=avx2",
                 f"#SBATCH -e {tmp_path}/logs/thresher-worker-%J.err"):
        assert line in lines
    # the job starts where thresher runs (relative inputs), quiet like the local cluster, then the user's setup
    prologue = [f"cd {tmp_path}", *QUIET_ENV, "source /opt/venv/bin/activate"]
    start = lines.index(prologue[0])
    assert lines[start:start + len(prologue)] == prologue
    assert "--nworkers 4 " in lines[-1] and "--nthreads 1 " in lines[-1]  # processes defaults to cores


def test_unset_walltime_writes_no_time_limit_and_processes_split_cores():
    script = job_script(cluster_options(cores=4, processes=2))
    assert "#SBATCH -t" not in script  # dask-jobqueue's own default would be 30 minutes
    assert "--nworkers 2 " in script and "--nthreads 2 " in script


@pytest.mark.parametrize(("kind", "directives"), [
    ("pbs", ["#PBS -N thresher-worker", "#PBS -q long", "#PBS -A proj", "#PBS -l select=1:ncpus=2:mem=7630MB"]),
    ("sge", ["#$ -N thresher-worker", "#$ -q long", "#$ -P proj"]),
    ("lsf", ["#BSUB -J thresher-worker", "#BSUB -q long", '#BSUB -P "proj"', "#BSUB -n 2"]),
])
def test_other_batch_systems_get_their_own_directives(kind, directives):
    script = job_script(cluster_options(kind=kind, cores=2, queue="long", account="proj"))
    assert set(directives) <= set(script.splitlines())
    assert set(QUIET_ENV) <= set(script.splitlines())


def test_cluster_with_scheduler_or_workers_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')  # --dry-run checks that the inputs exist
    config.write_text(f"output: o\ninputs: [{{path: {tmp_path}/x.jsonl, format: jsonl, source: s}}]\n"
                      "cluster: {kind: slurm, memory: 4GB}\n")
    assert main(["run", str(config), "--cluster", "slurm", "--scheduler", "tcp://h:8786"]) == 2
    assert capsys.readouterr().err == ("thresher: error: --cluster and --scheduler: give one (--scheduler uses a "
                                       "running cluster, --cluster starts one)\n")
    assert main(["run", str(config), "--workers", "4"]) == 2
    assert capsys.readouterr().err == ("thresher: error: --workers: sizes a local cluster; for cluster.kind slurm "
                                       "set cluster.jobs and cluster.processes\n")
    assert main(["run", str(config), "--cluster", "pbs", "--dry-run"]) == 0
    assert "  kind: pbs\n" in capsys.readouterr().out


def fake_batch_system(tmp_path, monkeypatch, sbatch: str, scancel: str = "exit 0") -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", sbatch), ("scancel", scancel)):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_refused_submission_says_what_sbatch_said(tmp_path, monkeypatch):
    fake_batch_system(tmp_path, monkeypatch, "echo 'sbatch: error: invalid partition specified: nope' >&2; exit 1")
    with pytest.raises(ClusterError) as error, job_queue_client(cluster_options(queue="nope")):
        pass
    assert str(error.value) == ("cluster.kind slurm: submitting 1 job(s) failed: "
                                "sbatch: error: invalid partition specified: nope")


def test_workers_that_never_arrive_time_out_with_where_to_look(tmp_path, monkeypatch):
    fake_batch_system(tmp_path, monkeypatch, "echo 'Submitted batch job 4242'")  # a job that never starts
    options = cluster_options(jobs=2, start_timeout_s=1, log_directory=str(tmp_path / "logs"))
    with pytest.raises(ClusterError) as error, job_queue_client(options):
        pass
    assert str(error.value) == (f"cluster.kind slurm: 0 of 2 workers arrived within 1 s (cluster.start_timeout_s); "
                                f"see `squeue --me` and the job logs in {tmp_path}/logs")


def test_ctrl_c_while_waiting_cancels_the_jobs_and_exits_130(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    fake_batch_system(tmp_path, monkeypatch, f"echo sbatch >> {calls}; echo 'Submitted batch job 4242'",
                      scancel=f'echo "scancel $*" >> {calls}')
    config = tmp_path / "c.yaml"
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')  # inputs are checked before the jobs start
    config.write_text(f"output: {tmp_path}/out\ninputs: [{{path: {tmp_path}/x.jsonl, format: jsonl, source: s}}]\n"
                      "cluster: {kind: slurm, memory: 1GB, dashboard_address: '127.0.0.1:0'}\n")
    # SIGINT as a terminal sends it, even where this test runs with SIGINT ignored (a background job)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", str(config)], cwd=REPO, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not calls.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, stderr  # not 0: dask-jobqueue's own SIGINT handler would exit 0
    assert stderr.splitlines()[-1] == "thresher: interrupted; rerun the same command to resume"
    assert calls.read_text().splitlines() == ["sbatch", "scancel 4242"]
