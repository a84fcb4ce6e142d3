"""One-line errors: a missing input, an output that is a file, a stage out of order fail before
any stage runs (and under --dry-run) with one line naming the key; Ctrl-C stops a run with one
line and no traceback from the client, the workers or the extraction sandboxes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

THRESHER = [sys.executable, "-m", "pipeline.cli"]


def config(tmp_path, **changes) -> str:
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps({"text": f"document {i} with a few words"}) + "\n" for i in range(4)))
    run = {"output": str(tmp_path / "out"), "inputs": [{"path": str(data), "format": "jsonl", "source": "a"}],
           **changes}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    return str(tmp_path / "run.yaml")


def one_line_error(path: str, *flags: str) -> str:
    proc = subprocess.run(THRESHER + ["run", path, "--workers", "1", "--no-progress", *flags],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("thresher: error: "), proc.stderr
    return lines[0].removeprefix("thresher: error: ")


@pytest.mark.parametrize("flags", [(), ("--dry-run",)])
def test_a_missing_input_path_names_its_key(tmp_path, flags):
    path = config(tmp_path)
    run = yaml.safe_load(open(path))
    run["inputs"].append({"path": str(tmp_path / "nope.jsonl"), "format": "jsonl", "source": "b"})
    run["inputs"].append({"path": str(tmp_path), "format": "jsonl", "source": "c"})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    assert one_line_error(path, *flags) == f"inputs[1].path: '{tmp_path}/nope.jsonl' does not exist"
    assert not (tmp_path / "out").exists()
    run["inputs"].pop(1)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    assert one_line_error(path, *flags) == (f"inputs[1].path: '{tmp_path}' is a folder; name its files, "
                                            f"e.g. {tmp_path}/*")


@pytest.mark.parametrize("flags", [(), ("--dry-run",)])
def test_an_output_that_is_a_file_or_under_one_names_output(tmp_path, flags):
    (tmp_path / "taken").write_text("x")
    assert one_line_error(config(tmp_path, output=str(tmp_path / "taken")), *flags) == (
        f"output: '{tmp_path}/taken' is a file; give a folder (it is created when missing)")
    assert one_line_error(config(tmp_path, output=str(tmp_path / "taken" / "run")), *flags) == (
        f"output: '{tmp_path}/taken/run' is under '{tmp_path}/taken', which is a file; give a folder")


@pytest.mark.parametrize("flags", [(), ("--dry-run",)])
def test_a_stage_before_the_one_it_reads_fails_before_the_read_stage(tmp_path, flags):
    path = config(tmp_path, stages=["lsh_buckets", "minhash_signatures"])
    assert one_line_error(path, *flags) == (
        "stages[0].lsh_buckets: must come right after minhash_signatures, whose output it reads "
        "(minhash_signatures -> lsh_buckets -> duplicate_clusters -> remove_duplicates); here it follows read")
    assert not (tmp_path / "out").exists()
    path = config(tmp_path, stages=["minhash_signatures", "max_chars", "lsh_buckets"])
    assert one_line_error(path, *flags).startswith("stages[2].lsh_buckets: must come right after minhash_signatures")


@pytest.mark.parametrize("flags", [(), ("--dry-run",)])
def test_a_missing_model_fails_before_the_read_stage(tmp_path, flags):
    path = config(tmp_path, stages=[{"tokenize": {"model": str(tmp_path / "fin.model")}}])
    assert one_line_error(path, *flags) == f"tokenize.model: '{tmp_path}/fin.model' does not exist"
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_a_run_with_one_line(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it, while `extract` runs its
    sandboxes on two workers: status 130, one line, no traceback from any process."""
    pages = tmp_path / "pages"
    pages.mkdir()
    body = "".join(f"<p>Paragraph {i} of a page about rivers, bridges and towns beside them.</p>" for i in range(40))
    for i in range(400):
        (pages / f"p{i:04d}.html").write_text(f"<html><head><title>Page {i}</title></head><body>{body}</body></html>")
    # parts of ~2 pages (read by bytes): extraction runs as many tasks, so its first commit record
    # comes while the others still run (merged into one task, the stage would end with its first)
    path = config(tmp_path, stages=["extract", "max_chars"], read={"files_per_task": 2, "max_bytes_per_part": 8000})
    run = yaml.safe_load(open(path))
    run["inputs"] = [{"path": f"{pages}/*.html", "format": "html", "source": "web"}]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    proc = subprocess.Popen(THRESHER + ["run", path, "--workers", "2", "--no-progress"], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / "01-extract" / "_stats").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # wait until extraction tasks have committed: workers and sandboxes are busy
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert [line for line in err.splitlines() if not line.startswith("[")] == [
        "thresher: interrupted; rerun the same command to resume"]
