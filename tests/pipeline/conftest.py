"""Fixtures and helpers of the pipeline tests: the demo's output, made once per session by the
real CLI (`thresher demo`), for every test that reads a finished run of every stage; and a real
`dask scheduler` with `dask worker` commands (`dask_processes`), each in a session of its own,
whose process groups are stopped afterwards (`stop_groups`)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

THRESHER = [sys.executable, "-m", "pipeline.cli"]


@dataclasses.dataclass(frozen=True)
class DemoRun:
    out: Path
    proc: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run(THRESHER + ["demo", "--output", str(out), "--workers", "2", "--no-progress"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return DemoRun(out, proc)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_groups(procs: list[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM the process group of each of `procs` (each started in a session of its own), the
    last started first; SIGKILL a group whose leader is still there after `timeout` s."""
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _dask(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    """`dask ARGS` of this environment in a session of its own, its output discarded."""
    return subprocess.Popen([str(Path(sys.executable).parent / "dask"), *args, "--no-dashboard"],
                            start_new_session=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclasses.dataclass(frozen=True)
class DaskProcesses:
    """A running `dask scheduler` at `address` and its `dask worker` commands; `procs` also holds
    whatever a test appends to be stopped with them (a `thresher run` it started)."""

    address: str
    procs: list[subprocess.Popen]

    def add_worker(self) -> subprocess.Popen:
        """One more one-thread `dask worker`, run from the repository (so it imports this code)."""
        proc = _dask("worker", self.address, "--nthreads", "1", cwd=REPO)
        self.procs.append(proc)
        return proc


@contextlib.contextmanager
def dask_processes(workers: int = 2) -> Iterator[DaskProcesses]:
    """A `dask scheduler` on a free local port and `workers` one-thread `dask worker` commands,
    yielded once every worker has arrived; their process groups are stopped on exit."""
    from distributed import Client

    port = free_port()
    cluster = DaskProcesses(f"tcp://127.0.0.1:{port}", [_dask("scheduler", "--host", "127.0.0.1", "--port", str(port))])
    try:
        for _ in range(workers):
            cluster.add_worker()
        with Client(cluster.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        yield cluster
    finally:
        stop_groups(cluster.procs)
