"""Ctrl-C with torchrun-like children: `call_in_own_group` keeps the terminal's SIGINT from the
launcher and its ranks (each in a session of its own, as torch elastic starts them), kills them
all, and re-raises it, so the command prints one line and no child prints a traceback. And a
real `thresher run` stopped mid-stage by SIGTERM (to the process, as `kill` sends it, or to the
whole group, as Slurm does) or by Ctrl-C: one line, status 143 or 130, the output lock given
back, and a rerun ends with the same bytes as an uninterrupted run."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

# A launcher like torchrun's agent: a rank in a new session, and SIGINT forwarded to it (the rank
# then dies with a KeyboardInterrupt traceback).
AGENT = textwrap.dedent("""
    import signal, subprocess, sys
    rank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    open(sys.argv[1], "w").write(str(rank.pid))
    signal.signal(signal.SIGINT, lambda *_: rank.send_signal(signal.SIGINT))
    sys.exit(rank.wait())
""")
COMMAND = textwrap.dedent("""
    import sys
    from pipeline.interrupts import call_in_own_group
    try:
        sys.exit(call_in_own_group([sys.executable, "-c", sys.argv[1], sys.argv[2]]))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
""")


def test_ctrl_c_kills_the_launcher_and_its_ranks_quietly(tmp_path):
    pid_file = tmp_path / "rank.pid"
    proc = subprocess.Popen([sys.executable, "-c", COMMAND, AGENT, str(pid_file)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    rank = int(pid_file.read_text())
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the group of the command only
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "interrupted\n", err
    time.sleep(0.2)
    state = subprocess.run(["ps", "-p", str(rank), "-o", "stat="], capture_output=True, text=True).stdout
    assert state.strip()[:1] in ("", "Z")  # killed (a zombie until whoever adopted it reaps it)


# -- a real run stopped by SIGINT or SIGTERM, then resumed -----------------------------------------

THRESHER = [sys.executable, "-m", "pipeline.cli"]
TERMINATED = "thresher: terminated (SIGTERM); rerun the same command to resume"
INTERRUPTED = "thresher: interrupted; rerun the same command to resume"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    """160 small HTML pages: extraction runs in sandboxes on the workers, two pages a task."""
    root = tmp_path_factory.mktemp("pages")
    body = "".join(f"<p>Paragraph {i} of a page about rivers, bridges and towns beside them.</p>" for i in range(30))
    for i in range(160):
        page = f"<html><head><title>Page {i}</title></head><body>{body} {i}</body></html>"
        (root / f"p{i:04d}.html").write_text(page)
    return root


def write_config(pages: Path, out: Path) -> Path:
    config = out.parent / f"{out.name}.yaml"
    config.write_text(yaml.safe_dump({"output": str(out), "read": {"files_per_task": 2, "max_docs_per_part": 2},
                                      "inputs": [{"path": f"{pages}/*.html", "format": "html", "source": "web"}],
                                      "stages": [{"extract": {}}, {"max_chars": {"max_chars": 5000}}]}))
    return config


def thresher_run(config: Path) -> subprocess.Popen:
    return subprocess.Popen(THRESHER + ["run", str(config), "--workers", "2", "--no-progress"], cwd=REPO,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def reference(pages, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reference") / "out"
    proc = thresher_run(write_config(pages, out))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return digest(out)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "to_group", "status", "line"), [
    (signal.SIGTERM, False, 143, TERMINATED),  # `kill PID`, `timeout`
    (signal.SIGTERM, True, 143, TERMINATED),  # Slurm: every process of the job step
    (signal.SIGINT, True, 130, INTERRUPTED),  # a terminal's Ctrl-C
], ids=["sigterm", "sigterm-group", "sigint-group"])
def test_a_signal_stops_a_run_with_one_line_and_a_rerun_gives_the_same_bytes(pages, reference, tmp_path, signum,
                                                                              to_group, status, line):
    out = tmp_path / "out"
    config = write_config(pages, out)
    proc = thresher_run(config)
    commits = out / "01-extract" / "_stats"
    deadline = time.monotonic() + 300
    while len(list(commits.glob("*.json"))) < 3:  # the workers and their sandboxes are busy
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    (os.killpg if to_group else os.kill)(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert [x for x in err.splitlines() if not x.startswith("[")] == [line], err
    assert not (out / "_lock.json").exists()
    if (out / "02-max_chars" / "_manifest.json").exists():
        pytest.skip("the run finished before the signal came")
    rerun = thresher_run(config)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    assert digest(out) == reference
