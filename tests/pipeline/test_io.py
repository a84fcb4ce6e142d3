"""A full disk (a small tmpfs, mounted here: the tests run as root): a write fails with an error
that names its file and leaves no temp file; a run fails with one line (status 4) and leaves
only whole, committed parts, so that a rerun after space is freed ends with the bytes of a run
that never ran out of space."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.io import commit_records, write_bytes, write_parquet
from tests.conftest import REPO

THRESHER = [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at tmp_path/disk, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    assert done.returncode == 0, f"mounting a tmpfs needs root: {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def incompressible_docs(folder: Path, files: int, per_file: int) -> None:
    folder.mkdir()
    rng = random.Random(0)
    for k in range(files):
        with (folder / f"docs-{k}.jsonl").open("w") as f:
            for i in range(per_file):
                text = " ".join(f"{rng.getrandbits(40):010x}" for _ in range(30))
                f.write(json.dumps({"text": text, "url": f"https://x.org/{k}/{i}"}) + "\n")


def test_a_write_to_a_full_disk_names_its_file_and_leaves_no_temp_file(small_disk):
    write_bytes(b"x" * (200 << 10), small_disk / "filler")
    table = pa.table({"text": [os.urandom(64).hex() for _ in range(2000)]})
    for write, data, name in ((write_parquet, table, "part-00000.parquet"), (write_bytes, b"y" * (100 << 10), "b")):
        with pytest.raises(OSError) as raised:
            write(data, small_disk / "stage" / name)
        assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(small_disk / "stage" / name)
        assert os.listdir(small_disk / "stage") == []


def run(config: Path, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run(THRESHER + ["run", str(config), "--output", str(output), "--workers", "2", "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.parquet"))}


@pytest.mark.slow
def test_a_run_out_of_space_fails_with_one_line_and_a_rerun_gives_the_same_bytes(small_disk, tmp_path):
    incompressible_docs(tmp_path / "docs", 8, 250)  # ~700 KB of parts per stage, 8 read tasks
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output": "unused", "read": {"max_docs_per_part": 50},
                                      "inputs": [{"path": str(tmp_path / "docs" / "*.jsonl"), "format": "jsonl",
                                                  "source": "s"}],
                                      "stages": [{"min_chars": {"min_chars": 100}}]}))
    out = small_disk / "out"
    full = run(config, out)
    assert full.returncode == 4, full.stderr[-3000:]
    (line,) = [x for x in full.stderr.splitlines() if not x.startswith("[")]
    assert line.startswith(f"thresher: error: no space left on device writing {out}/") and line.endswith(
        "; free space (or give another --output) and rerun the same command to resume"), line
    assert "Traceback" not in full.stderr and not (out / "_lock.json").exists()
    stage = out / "00-read"
    assert not (stage / "_manifest.json").exists()
    records = commit_records(str(stage))
    for record in records.values():  # what a rerun trusts: every listed part whole
        for name in record["files"]:
            assert pq.read_metadata(stage / name).num_rows == record["sizes"][name]["rows"]

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)  # space freed
    rerun = run(config, out)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    if records:
        assert f", {len(records)} done already" in rerun.stderr
    reference = run(config, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert digest(out) == digest(tmp_path / "reference") and len(digest(out)) > 2 * 20
