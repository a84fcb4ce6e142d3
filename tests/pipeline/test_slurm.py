"""`thresher run --cluster slurm` on a real single-node Slurm cluster: Debian's munged,
slurmctld and slurmd, configured and started as root by the test under a temporary folder (own
munge key and socket, free ports), stopped afterwards with every process their jobs left. The
run's Parquet must equal a local `--workers 2` run's byte for byte, and its workers must be seen
running as Slurm jobs; a worker job cancelled (`scancel`) mid-stage leaves the run to finish on the
other with the same bytes. Without the Slurm packages or root this fails under CI=true and is
skipped elsewhere (`.ci/run` installs munge slurmctld slurmd slurm-client)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.pipeline.conftest import free_port, stop_groups
from tests.pipeline.test_runner import _cleaneval_config, digest_tree

THRESHER = [sys.executable, "-m", "pipeline.cli"]
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _require_slurm() -> dict[str, str]:
    """Full paths of the Slurm and munge programs; fails (CI) or skips when they or root are missing."""
    found = {name: shutil.which(name, path=SEARCH_PATH) for name in DAEMONS + CLIENTS}
    missing = [name for name, path in found.items() if path is None]
    problem = f"Slurm programs missing: {', '.join(missing)} (apt-get install munge slurmctld slurmd " \
              "slurm-client)" if missing else ("the Slurm daemons must start as root" if os.geteuid() else "")
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return found


def _slurm_conf(root: Path, munge_socket: Path) -> str:
    return "\n".join([
        "ClusterName=thresher-test", "SlurmctldHost=localhost", "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none", "MailProg=/bin/true",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory", "SchedulerType=sched/backfill",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none", "ReturnToService=2",
        "NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=2048 State=UNKNOWN",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP", ""])


def _start_munge(root: Path, munged: str) -> tuple[subprocess.Popen, Path]:
    # munged wants its socket's folders searchable by all, its key readable by root alone
    run, secret = root / "run", root / "secret"
    run.mkdir(mode=0o755)
    secret.mkdir(mode=0o700)
    key = secret / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = run / "munge.socket"
    proc = subprocess.Popen([munged, "-F", f"--key-file={key}", f"--socket={sock}", f"--pid-file={run}/munged.pid",
                             f"--log-file={secret}/munged.log", f"--seed-file={secret}/munged.seed",
                             "--num-threads=1"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until(lambda: sock.exists(), 10, "munged did not create its socket", root / "secret" / "munged.log")
    return proc, sock


def _wait_until(ready, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            raise AssertionError(f"{what} within {timeout} s; {log}:\n{tail}")
        time.sleep(0.2)


def _our_processes(marker: str) -> list[int]:
    """Pids whose environment holds `marker` (our SLURM_CONF): the daemons and their jobs."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:  # gone, or a zombie
                pass
    return pids


def _stop(procs: list[subprocess.Popen], env: dict[str, str], tools: dict[str, str], marker: str) -> None:
    subprocess.run([tools["scancel"], "--user=root"], env=env, timeout=30, capture_output=True)
    _wait_until_or_not(lambda: not _squeue(env, tools), 20)
    stop_groups(procs, timeout=15)
    for pid in _our_processes(marker):  # slurmstepd and job processes live in sessions of their own
        os.kill(pid, signal.SIGKILL)


def _wait_until_or_not(ready, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.2)
    return ready()


def _squeue(env: dict[str, str], tools: dict[str, str]) -> list[list[str]]:
    """Job id, name and state of every job in the queue."""
    out = subprocess.run([tools["squeue"], "-h", "-o", "%i|%j|%T"], env=env, capture_output=True, text=True,
                         timeout=30).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def _node_state(env: dict[str, str], tools: dict[str, str]) -> str:
    return subprocess.run([tools["sinfo"], "-h", "-o", "%T"], env=env, capture_output=True, text=True,
                          timeout=30).stdout.strip()


@pytest.fixture
def slurm() -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """The environment (SLURM_CONF) and program paths of a running one-node Slurm cluster."""
    tools = _require_slurm()
    root = Path(tempfile.mkdtemp(prefix="thresher-slurm-", dir="/tmp"))
    root.chmod(0o755)
    (root / "state").mkdir()
    (root / "spool").mkdir()
    conf = root / "slurm.conf"
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []
    try:
        munged, sock = _start_munge(root, tools["munged"])
        procs.append(munged)
        conf.write_text(_slurm_conf(root, sock))
        for argv in ([tools["slurmctld"], "-D", "-c", "-f", str(conf)],
                     [tools["slurmd"], "-D", "-N", "localhost", "-f", str(conf)]):
            procs.append(subprocess.Popen(argv, env=env, start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_until(lambda: _node_state(env, tools) == "idle", 30, "the Slurm node did not come up idle",
                    root / "slurmctld.log")
        yield env, tools
    finally:
        _stop(procs, env, tools, f"SLURM_CONF={conf}")
        shutil.rmtree(root, ignore_errors=True)


def _write_inputs(folder: Path) -> dict:
    """A JSONL file of 400 made-up documents, some too short, and the run config's shared part."""
    rng = random.Random(0)
    words = ("the council approved the new budget after a long debate about school funding roads and "
             "parks while residents asked questions").split()
    lines = []
    for i in range(400):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 120))) + "."
        lines.append(json.dumps({"text": text[:30] if i % 7 == 0 else text, "url": f"https://news.example/{i}"}))
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return {"inputs": [{"path": str(folder / "docs.jsonl"), "format": "jsonl", "source": "news"}],
            "read": {"max_docs_per_part": 50},
            "stages": [{"min_chars": {"min_chars": 40}}, {"gopher_quality": {}}, {"exact_dedup": {}}]}


@pytest.mark.slow
def test_slurm_jobs_give_the_same_bytes_as_a_local_run(slurm, tmp_path):
    env, tools = slurm
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])}  # sbatch passes it on
    base = _write_inputs(tmp_path)
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({**base, "output": str(tmp_path / "local")}))
    subprocess.run(THRESHER + ["run", str(tmp_path / "local.yaml"), "--workers", "2", "--no-progress"],
                   check=True, cwd=REPO, env=env, capture_output=True, timeout=120)
    logs = tmp_path / "job-logs"
    cluster = {"jobs": 2, "cores": 1, "memory": "900MB", "walltime": "00:10:00", "log_directory": str(logs),
               "dashboard_address": "127.0.0.1:0", "start_timeout_s": 60}
    (tmp_path / "slurm.yaml").write_text(yaml.safe_dump({**base, "output": str(tmp_path / "slurm"),
                                                         "cluster": cluster}))
    err = tmp_path / "slurm-run.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen(THRESHER + ["run", str(tmp_path / "slurm.yaml"), "--cluster", "slurm", "--no-progress"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        seen, script = _watch_queue(proc, env, tools)
    assert proc.returncode == 0, err.read_text()[-3000:]
    running = {job_id for job_id, name, state in seen if state == "RUNNING" and name == "thresher-worker"}
    assert len(running) == 2, seen  # both workers ran as Slurm jobs of their own
    assert "#SBATCH -J thresher-worker" in script and "#SBATCH --mem=859M" in script
    assert "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False" in script  # as quiet as the local cluster
    assert "cluster: 2 workers in 2 slurm job(s) named thresher-worker" in err.read_text()
    assert sorted(p.name for p in logs.iterdir()) == sorted(f"thresher-worker-{j}.{x}" for j in running
                                                            for x in ("err", "out"))
    assert _wait_until_or_not(lambda: not _squeue(env, tools), 20), "the run left its jobs in the queue"
    assert digest_tree(tmp_path / "slurm") == digest_tree(tmp_path / "local")
    assert len(digest_tree(tmp_path / "local")) > 30


def _watch_queue(proc: subprocess.Popen, env: dict[str, str], tools: dict[str, str]) -> tuple[set, str]:
    """Every (job id, name, state) squeue showed while `proc` ran, and a running job's batch script."""
    seen: set[tuple[str, str, str]] = set()
    script = ""
    deadline = time.monotonic() + 150
    while proc.poll() is None and time.monotonic() < deadline:
        for job_id, name, state in _squeue(env, tools):
            seen.add((job_id, name, state))
            if state == "RUNNING" and not script:
                script = subprocess.run([tools["scontrol"], "write", "batch_script", job_id, "-"], env=env,
                                        capture_output=True, text=True, timeout=30).stdout
        time.sleep(0.2)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return seen, script


@pytest.mark.slow
def test_a_worker_job_cancelled_mid_stage_leaves_the_run_to_finish_with_the_local_bytes(slurm, tmp_path):
    env, tools = slurm
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])}
    local = _cleaneval_config(tmp_path, tmp_path / "local")  # extraction: slow enough to cancel a job in it
    subprocess.run(THRESHER + ["run", str(local), "--workers", "2", "--no-progress"], check=True, cwd=REPO, env=env,
                   capture_output=True, timeout=300)
    config = yaml.safe_load(_cleaneval_config(tmp_path, tmp_path / "slurm").read_text())
    config["cluster"] = {"jobs": 2, "cores": 1, "memory": "900MB", "walltime": "00:10:00",
                         "log_directory": str(tmp_path / "job-logs"), "dashboard_address": "127.0.0.1:0",
                         "start_timeout_s": 60}
    (tmp_path / "slurm.yaml").write_text(yaml.safe_dump(config))
    err = tmp_path / "slurm-run.err"
    stage = tmp_path / "slurm" / "01-extract"
    with err.open("w") as stderr:
        proc = subprocess.Popen(THRESHER + ["run", str(tmp_path / "slurm.yaml"), "--cluster", "slurm", "--no-progress"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        try:
            _wait_until(lambda: list((stage / "_stats").glob("*.json")) or proc.poll() is not None, 240,
                        "no extraction part was committed", err)
            assert not (stage / "_manifest.json").exists(), "the stage ended before the cancel"
            jobs = {job for job, _, _ in _squeue(env, tools)}
            victim = next(job for job, name, state in _squeue(env, tools) if state == "RUNNING")
            subprocess.run([tools["scancel"], victim], env=env, check=True, timeout=30)
            seen, _ = _watch_queue(proc, env, tools)
            assert proc.returncode == 0, err.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert digest_tree(tmp_path / "slurm") == digest_tree(tmp_path / "local")
    assert "cluster: 2 workers in 2 slurm job(s)" in err.read_text()
    assert {job for job, _, _ in seen} <= jobs  # no replacement job: the other worker finished the run
