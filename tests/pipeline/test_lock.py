"""One run at a time per folder (pipeline/lock.py): a second `thresher run` into an output that
a live run holds exits 75 with one line naming the holder's host, pid and start; a holder that
crashed (its pid gone from this host, or its heartbeat stopped on another) is taken over with a
one-line notice; the lock is created only if absent, on local disk and on S3 (moto's server)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline import lock
from tests.conftest import REPO
from tests.pipeline import test_s3

server, fs = test_s3.server, test_s3.fs  # the S3 tests' moto server and client, as fixtures here

THRESHER = [sys.executable, "-m", "pipeline.cli"]


def write_config(tmp_path: Path, out: Path | str) -> Path:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"document {i} " + "word " * (i % 9)}) + "\n" for i in range(40)))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output": str(out), "read": {"max_docs_per_part": 10},
                                      "inputs": [{"path": str(docs), "format": "jsonl", "source": "s"}],
                                      "stages": [{"min_chars": {"min_chars": 12}}]}))
    return config


def run(config: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(THRESHER + ["run", str(config), "--workers", "1", "--no-progress"], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def holder(pid: int, **changes) -> dict:
    return {"host": socket.gethostname(), "pid": pid, "started": lock.process_start(pid), "output": "elsewhere",
            "since": "2026-01-02T03:04:05Z", "heartbeat": lock.iso(lock.now()), "token": "t", **changes}


@pytest.mark.slow
def test_a_second_run_into_a_held_output_is_refused_with_one_line(tmp_path):
    out = tmp_path / "out"
    first = run(write_config(tmp_path, out), start_new_session=True)
    try:  # stop the first run while it holds the output, start a second, then let the first go on
        deadline = time.monotonic() + 120
        while not (out / "_lock.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGSTOP)
        second = run(tmp_path / "run.yaml")
        _, err = second.communicate(timeout=120)
        os.killpg(first.pid, signal.SIGCONT)
        assert second.returncode == 75, err
        since = json.loads((out / "_lock.json").read_text())["since"]
        assert err.splitlines() == [
            f"thresher: error: output: {out} is in use by host {socket.gethostname()} pid {first.pid} "
            f"(started {since}); wait for that run, or delete {out}/_lock.json if it is gone"]
        assert first.wait(120) == 0, first.communicate()[1][-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert not (out / "_lock.json").exists()  # given back at the end
    assert (out / "01-min_chars" / "_manifest.json").exists()


@pytest.mark.slow
def test_a_crashed_holders_lock_is_taken_over_with_a_notice(tmp_path):
    out = tmp_path / "out"
    config = write_config(tmp_path, out)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out.mkdir()
    (out / "_lock.json").write_text(json.dumps(holder(gone.pid, started=1.0)))
    proc = run(config)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    notice = [line for line in err.splitlines() if "taking over" in line]
    assert notice == [f"output: taking over the lock on {out} from host {socket.gethostname()} pid {gone.pid} "
                      "(output elsewhere, started 2026-01-02T03:04:05Z): its process is gone"]
    assert not (out / "_lock.json").exists()


def test_live_locks_are_refused_and_stale_ones_taken_over(tmp_path, capsys):
    folder = str(tmp_path / "index" / "exact")
    os.makedirs(folder)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        Path(folder, "_lock.json").write_text(json.dumps(holder(alive.pid)))
        with pytest.raises(lock.Locked, match=rf"^x: {folder} is in use by host \S+ pid {alive.pid} \(output "
                           r"elsewhere, started 2026-01-02T03:04:05Z\); wait for that run, or delete .*/_lock.json "
                           r"if it is gone$"):
            lock.acquire(folder, "mine", "x")
    finally:
        alive.kill()
        alive.wait()
    Path(folder, "_lock.json").write_text(json.dumps(holder(alive.pid)))  # its pid is gone now
    lock.acquire(folder, "mine", "x")
    assert json.loads(Path(folder, "_lock.json").read_text())["pid"] == os.getpid()
    assert capsys.readouterr().err.endswith(": its process is gone\n")
    lock.acquire(folder, "mine", "x")  # re-entrant for this process and output
    with pytest.raises(lock.Locked, match=rf"in use by host \S+ pid {os.getpid()} \(output mine"):
        lock.acquire(folder, "another output", "x")
    lock.release(folder)
    assert not Path(folder, "_lock.json").exists()

    elsewhere = holder(1, host="another-host")  # another host: only the heartbeat tells
    Path(folder, "_lock.json").write_text(json.dumps(elsewhere))
    with pytest.raises(lock.Locked, match="in use by host another-host pid 1"):
        lock.acquire(folder, "mine", "x")
    old = lock.iso(lock.now().replace(year=2025))
    Path(folder, "_lock.json").write_text(json.dumps({**elsewhere, "heartbeat": old}))
    lock.acquire(folder, "mine", "x")
    assert "from host another-host pid 1 (output elsewhere, started 2026-01-02T03:04:05Z): no heartbeat for " \
        in capsys.readouterr().err
    Path(folder, "_lock.json").write_text(json.dumps(elsewhere))  # taken from this process
    with pytest.raises(lock.Locked, match=r"^x: lost the lock"):
        lock.ensure_held(folder, "x")
    lock.release(folder)
    assert Path(folder, "_lock.json").exists()  # not ours: left to its holder


def test_the_lock_is_created_only_if_absent(tmp_path):
    url = str(tmp_path / "a" / "_lock.json")
    assert lock.create_if_absent(url, b"1") and not lock.create_if_absent(url, b"2")
    assert Path(url).read_bytes() == b"1" and os.listdir(tmp_path / "a") == ["_lock.json"]


# -- on S3 ----------------------------------------------------------------------------------------



@pytest.mark.slow
def test_the_output_lock_on_s3(server, fs, monkeypatch, tmp_path):
    """Created only if absent (a conditional PUT); a `thresher run` into an S3 output that this
    process holds is refused; once it is given back the run takes it and gives it back."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, server[name])
    fs.mkdir("lock-bucket")
    folder = "s3://lock-bucket/runs/oct"
    assert lock.create_if_absent(f"{folder}/probe", b"1") and not lock.create_if_absent(f"{folder}/probe", b"2")
    config = write_config(tmp_path, folder)
    lock.acquire(folder, folder, "output")
    try:
        with pytest.raises(lock.Locked, match=rf"^output: {folder} is in use by host \S+ pid {os.getpid()} \(started "):
            lock.acquire(folder, "another output", "output")
        proc = run(config)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 75 and err.startswith(f"thresher: error: output: {folder} is in use by host "), err
    finally:
        lock.release(folder)
    fs.invalidate_cache()
    assert not fs.exists("lock-bucket/runs/oct/_lock.json")
    proc = run(config)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    fs.invalidate_cache()
    assert fs.exists("lock-bucket/runs/oct/01-min_chars/_manifest.json")
    assert not fs.exists("lock-bucket/runs/oct/_lock.json")


def test_stats_refuses_a_run_that_is_still_writing(tmp_path):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "_lock.json").write_text(json.dumps(holder(alive.pid, output=str(tmp_path))))
        proc = subprocess.run(THRESHER + ["stats", str(tmp_path), "--workers", "1"], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
    finally:
        alive.kill()
        alive.wait()
    assert proc.returncode == 75 and proc.stderr.splitlines() == [
        f"thresher: error: PATH: {tmp_path} is in use by host {socket.gethostname()} pid {alive.pid} "
        f"(started 2026-01-02T03:04:05Z); wait for that run, or delete {tmp_path}/_lock.json if it is gone"]
    assert not (tmp_path / "report").exists()
