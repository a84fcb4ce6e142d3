"""The chaos harness's fast variant (bench/chaos.py has the full one): the demo crawl plus the
shared real WARCs through every stage, once uninterrupted, then once more with the whole
process group SIGKILLed in five different stages, each kill landing in the resume of the run
before. The resumed output must equal the uninterrupted one byte for byte, with the same
document ids in every stage. And a real `dask scheduler` with `dask worker` processes, one of
them SIGKILLed mid-stage and replaced: the run completes with the bytes of a local run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.chaos import differences, phase_windows, run_thresher, run_trial, table, write_config
from tests.conftest import REPO, shared_path
from tests.pipeline.conftest import dask_processes
from tests.pipeline.test_runner import THRESHER, _cleaneval_config, all_ids, digest_tree

# one kill in each: the map stages, the fused filter chain, MinHash, classify, and tokenize
KILL_STAGES = ("01-extract", "02-language..08-pii", "10-minhash_signatures", "14-classify", "17-tokenize")


@pytest.mark.slow
def test_kills_in_five_stages_resume_to_the_bytes_of_an_uninterrupted_run(tmp_path):
    config = write_config(tmp_path, [shared_path("warc_real_crawls")])
    reference = run_thresher(config, tmp_path / "reference")
    assert reference.returncode == 0, reference.log[-2000:]
    windows = phase_windows(reference)
    order = list(windows)
    assert set(KILL_STAGES) <= set(order), order
    # a quarter into each stage by the reference run's clock: a kill that slipped past the
    # tokenizer (a reference slower than this run) would leave the last one nothing to aim at
    trial = run_trial(config, tmp_path / "reference", tmp_path / "killed",
                      [(stage, windows[stage] / 4) for stage in KILL_STAGES], order)
    print(table([trial], order))
    assert len(trial.kills) == len(KILL_STAGES), trial.kills
    assert trial.kills == sorted(trial.kills, key=order.index)  # each resume got further
    assert trial.missed == 0
    assert trial.failed_resumes == []
    assert trial.problems == []
    # and the comparison sees a document lost and rejected ones duplicated (in place: a copy
    # elsewhere would differ by the output path written in config.yaml and the manifests)
    damaged = tmp_path / "killed"
    # remove_duplicates wrote views of its input's parts (pipeline/parts.py): one more dropped row
    drop = sorted((damaged / "13-remove_duplicates" / "_views").glob("*.drop.parquet"))[0]
    rows = pq.read_table(drop)["row"].to_pylist()
    pq.write_table(pa.table({"row": pa.array(sorted([*rows, min(set(range(len(rows) + 1)) - set(rows))]),
                                             pa.int64())}), drop)
    rejected = sorted((damaged / "15-select" / "rejected").glob("*.parquet"))[0]
    twice = pa.concat_tables([pq.read_table(rejected)] * 2)
    pq.write_table(twice, rejected)
    assert differences(tmp_path / "reference", damaged) == [
        f"13-remove_duplicates/_views/{drop.name}: differs", f"15-select/rejected/{rejected.name}: differs",
        "13-remove_duplicates kept ids: 1 lost, 0 duplicated or new",
        f"15-select rejected ids: 0 lost, {twice.num_rows // 2} duplicated or new"]


def _busy_worker(client, stage_dir: Path, deadline: float) -> str:
    """The address of a worker running a task of the stage, once the stage has committed a part
    and before it has finished."""
    while time.monotonic() < deadline:
        busy = [addr for addr, tasks in client.processing().items() if tasks]
        if busy and list((stage_dir / "_stats").glob("*.json")) and not (stage_dir / "_manifest.json").exists():
            return busy[0]
        time.sleep(0.02)
    raise AssertionError(f"no worker was busy in {stage_dir.name} with a part committed")


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["group", "process"])
def test_a_dask_worker_killed_mid_stage_is_replaced_and_the_run_gives_the_local_bytes(kill, tmp_path):
    """kill=group: the `dask worker` command's whole group (nanny, worker, sandboxes), and the
    test starts a new `dask worker`; kill=process: the worker process alone, as the OOM killer
    would, and its nanny starts a fresh one."""
    from distributed import Client

    local = _cleaneval_config(tmp_path, tmp_path / "local")
    subprocess.run(THRESHER + ["run", str(local), "--workers", "2", "--no-progress"], check=True, cwd=REPO,
                   capture_output=True, timeout=300)
    with dask_processes(workers=2) as cluster, Client(cluster.address, timeout=60) as client:
        pids = client.run(os.getpid)  # worker address -> pid
        remote = _cleaneval_config(tmp_path, tmp_path / "remote")
        err = tmp_path / "remote.err"
        with err.open("w") as stderr:
            run = subprocess.Popen(THRESHER + ["run", str(remote), "--scheduler", cluster.address, "--no-progress"],
                                   cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr)
            cluster.procs.append(run)
            victim = _busy_worker(client, tmp_path / "remote" / "01-extract", time.monotonic() + 240)
            if kill == "group":
                os.killpg(os.getpgid(pids[victim]), signal.SIGKILL)
                cluster.add_worker()
            else:
                os.kill(pids[victim], signal.SIGKILL)
            assert run.wait(timeout=300) == 0, err.read_text()[-3000:]
        assert victim not in client.scheduler_info()["workers"]
        assert len(client.scheduler_info()["workers"]) == 2  # the survivor and the replacement
    assert digest_tree(tmp_path / "remote") == digest_tree(tmp_path / "local")
    assert all_ids(tmp_path / "remote" / "02-language") == all_ids(tmp_path / "local" / "02-language")
