"""Fixtures of the pipeline tests: the demo's output, made once per session by the real CLI
(`thresher demo`), for every test that reads a finished run of every stage."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
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
