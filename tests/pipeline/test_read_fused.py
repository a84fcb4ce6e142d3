"""`read.materialize: false`: the read stage feeds its chunks straight into the first chain of
map stages (pipeline/read.py, pipeline/fuse.py `ChainBuffer`) and writes no documents. The run
keeps the documents, decisions and order of a run that writes them, writes each read task's
chain output in parts up to the limits, resumes to the same bytes after a kill inside a read
task, and rereads the inputs when a stage of that chain changes after the read finished. Its
outputs open with the tools users read them with, and every document read is kept or rejected
exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset

from pipeline.config import parse_config
from pipeline.io import read_json
from pipeline.options import ReadOptions
from pipeline.readers import list_tasks, read_file
from pipeline.record import Document
from pipeline.runner import Runner
from pipeline.stage import REGISTRY
from tests.conftest import REPO
from tests.pipeline.test_fuse import (
    CHAIN,
    KILL_AT,
    KILL_MARKER,
    STAGES,
    SigkillOnce,
    _inputs,
    _manifests,
    _rows,
    _small_files,
    _without_timings,
)
from tests.pipeline.test_outputs import _stage_dirs
from tests.pipeline.test_runner import digest_tree


@pytest.fixture
def kill_stage(monkeypatch):
    monkeypatch.setitem(REGISTRY, SigkillOnce.name, SigkillOnce)


UNWRITTEN = {"max_docs_per_part": 50, "materialize": False}


def _run(client, output: Path, stages: list, read: dict, keep_intermediate: bool = False) -> dict:
    config = parse_config({"output": str(output), "inputs": _inputs(), "stages": stages, "read": read})
    return Runner(config, client, progress=False, keep_intermediate=keep_intermediate).run()


def test_an_unwritten_read_keeps_the_documents_and_decisions_of_a_written_one(client, tmp_path):
    fused = _run(client, tmp_path / "fused", STAGES, UNWRITTEN)
    written = _run(client, tmp_path / "written", STAGES, {"max_docs_per_part": 50})
    assert [s["docs_out"] for s in fused["stages"]] == [s["docs_out"] for s in written["stages"]]
    assert fused["sources"] == written["sources"]
    read = _manifests(tmp_path / "fused")["00-read"]
    assert read["materialized"] is False and read["parts"] == [] and read["fused_into"] == "07-pii"
    assert sum(read["rows"].values()) == fused["stages"][0]["docs_out"] > 0
    assert not list((tmp_path / "fused" / "00-read").glob("part-*.parquet"))  # no raw copy
    # every stage's kept and rejected documents, in the same order (the parts are cut elsewhere)
    for stage in ("07-pii", "08-exact_dedup", "10-max_chars"):
        assert _rows(tmp_path / "fused" / stage) == _rows(tmp_path / "written" / stage), stage
    for stage in ("01-language", "03-gopher_repetition", "06-fineweb_quality", "08-exact_dedup"):
        assert _rows(tmp_path / "fused" / stage / "rejected") == _rows(tmp_path / "written" / stage / "rejected")
    # a read task's chunks (50 documents each) were written together, up to 50 kept documents a part
    pii = _manifests(tmp_path / "fused")["07-pii"]
    assert 2 <= len(pii["parts"]) < len(read["rows"]) and max(pii["rows"].values()) <= 50

    # --keep-intermediate writes the chain's stages, cut the same way, and still no raw copy
    _run(client, tmp_path / "kept", STAGES, UNWRITTEN, keep_intermediate=True)
    a, b = digest_tree(tmp_path / "fused"), digest_tree(tmp_path / "kept")
    views = {k for k in a if "/_views/" in k}  # exact_dedup's views of pii's parts (copies when kept)
    assert {k: b[k] for k in a if k not in views} == {k: v for k, v in a.items() if k not in views}
    assert {k.split("/")[0] for k in set(b) - set(a)} == {f"{i:02d}-{next(iter(s))}" for i, s in
                                                          enumerate(STAGES[:6], start=1)} | {"08-exact_dedup",
                                                                                              "09-min_chars"}
    assert _rows(tmp_path / "fused" / "08-exact_dedup") == _rows(tmp_path / "kept" / "08-exact_dedup")
    assert not list((tmp_path / "kept" / "00-read").glob("part-*.parquet"))


def test_small_files_are_read_together_and_the_parts_do_not_depend_on_the_workers(client1, client2, tmp_path):
    _small_files(tmp_path / "in")
    read = {"max_bytes_per_part": 40_000, "max_docs_per_part": None, "materialize": False}
    spec = {"path": str(tmp_path / "in" / "*.jsonl"), "format": "jsonl", "source": "s"}
    config = parse_config({"output": "o", "inputs": [spec], "read": read, "stages": ["pii"]})
    tasks = list_tasks(config.inputs, config.read)
    sizes = [sum(f.size for f in t.files) for t in tasks]
    assert len(tasks) < 13 and all(s <= 40_000 for s in sizes[:-1])  # consecutive small files together
    assert sum(len(t.files) for t in tasks) == 13
    assert len(list_tasks(config.inputs, ReadOptions(max_bytes_per_part=40_000))) == 13  # written: one each

    def run(client, output: Path) -> dict:
        config = parse_config({"output": str(output), "inputs": [spec], "read": read,
                               "stages": [{"max_chars": {"max_chars": 8000}}, "exact_dedup"]})
        return Runner(config, client, progress=False).run()

    run(client1, tmp_path / "one")
    run(client2, tmp_path / "two")
    assert digest_tree(tmp_path / "one") == digest_tree(tmp_path / "two")
    parts = _manifests(tmp_path / "two")["01-max_chars"]["parts"]
    assert 1 < len(parts) < 13  # fewer parts than files; the limits cut them within a task


def _ids_loaded_everywhere(files: list[Path], cache: Path) -> list[str]:
    """The ids in `files`, read with `datasets`, DuckDB and pandas; all three must agree."""
    if not files:
        return []
    loaded = load_dataset("parquet", data_files=[str(f) for f in files], split="train", cache_dir=str(cache))
    in_duckdb = duckdb.sql(f"SELECT id FROM read_parquet({[str(f) for f in files]!r})").fetchall()
    in_pandas = pd.concat(pd.read_parquet(f) for f in files)["id"].tolist()
    assert sorted(loaded["id"]) == sorted(i for (i,) in in_duckdb) == sorted(in_pandas), files[0].parent
    return in_pandas


def test_unwritten_read_outputs_load_everywhere_and_hold_every_document_read_once(client1, tmp_path):
    _small_files(tmp_path / "in")
    (tmp_path / "in" / "z-copy.jsonl").write_text((tmp_path / "in" / "f00.jsonl").read_text().splitlines()[0] + "\n")
    spec = {"path": str(tmp_path / "in" / "*.jsonl"), "format": "jsonl", "source": "s"}
    # one document a chunk: the copy's part is emptied by exact_dedup (the last stage: it writes copies)
    config = parse_config({"output": str(tmp_path / "out"), "inputs": [spec],
                           "read": {"max_docs_per_part": 1, "materialize": False},
                           "stages": [{"max_chars": {"max_chars": 8000}}, {"min_chars": {"min_chars": 100}},
                                      "exact_dedup"]})
    Runner(config, client1, progress=False).run()
    read = sorted(item.id for task in list_tasks(config.inputs, config.read) for f in task.files
                  for item in read_file(f, config.inputs[task.input_index], config.read) if isinstance(item, Document))
    assert len(read) == 37

    rejected_so_far: list[str] = []
    saw_empty = False
    stages = _stage_dirs(tmp_path / "out")
    assert [s.name for s in stages] == ["00-read", "01-max_chars", "02-min_chars", "03-exact_dedup"]
    for stage in stages:
        manifest = read_json(stage / "_manifest.json")
        stats = manifest["stats"]
        rejected = sorted((stage / "rejected").glob("*.parquet"))
        rejected_so_far += _ids_loaded_everywhere(rejected, tmp_path / "hf")
        assert sum(pq.ParquetFile(f).metadata.num_rows for f in rejected) == stats["docs_rejected"], stage.name
        assert sum(manifest["rows"].values()) == stats["docs_out"], stage.name
        kept = sorted(stage.glob("part-*.parquet"))
        if not kept:  # fused into the chain's last stage: its documents were never written
            assert manifest["materialized"] is False and manifest["parts"] == [], stage.name
            continue
        assert [f.name for f in kept] == manifest["parts"], stage.name
        rows = {f.name: pq.ParquetFile(f).metadata.num_rows for f in kept}
        assert rows == manifest["rows"], stage.name
        saw_empty |= 0 in rows.values()
        kept_ids = _ids_loaded_everywhere(kept, tmp_path / "hf")
        assert len(kept_ids) == stats["docs_out"], stage.name
        assert sorted(kept_ids + rejected_so_far) == read, stage.name  # nothing lost, nothing twice
    assert [s.name for s in stages if not list(s.glob("part-*.parquet"))] == ["00-read", "01-max_chars"]
    assert saw_empty, "the copy's part should have been emptied by exact_dedup"
    assert len(rejected_so_far) == 13  # 12 appendices too long, 1 copy


def _config_file(tmp_path: Path, output: Path, stages: list) -> Path:
    path = tmp_path / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump({"output": str(output), "inputs": _inputs(), "stages": stages,
                                    "read": {"max_docs_per_part": 40, "materialize": False}}))
    return path


def test_a_run_killed_inside_a_read_task_resumes_to_the_same_bytes(client, kill_stage, tmp_path):
    reference = tmp_path / "reference"
    Runner(parse_config(yaml.safe_load(_config_file(tmp_path, reference, CHAIN).read_text())), client,
           progress=False).run()
    last = reference / "05-fineweb_quality"
    ids = [i for p in sorted(last.glob("part-*.parquet")) for i in pq.read_table(p, columns=["id"])["id"].to_pylist()]
    killed = tmp_path / "killed"
    config = _config_file(tmp_path, killed, CHAIN)
    env = {**os.environ, KILL_AT: ids[len(ids) // 2], KILL_MARKER: str(tmp_path / "killed-once"),
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", f"from tests.pipeline.test_fuse import drive; drive({str(config)!r})"],
                          cwd=REPO, env=env, start_new_session=True, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (killed / "00-read" / "_manifest.json").exists()

    Runner(parse_config(yaml.safe_load(config.read_text())), client, progress=False).run()
    assert digest_tree(killed) == digest_tree(reference)
    assert ({k: _without_timings(m) for k, m in _manifests(killed).items()}
            == {k: _without_timings(m) for k, m in _manifests(reference).items()})


def test_a_changed_stage_after_a_finished_unwritten_read_reads_the_inputs_again(client, kill_stage, tmp_path):
    def run(output: Path, stages: list) -> dict:
        return Runner(parse_config(yaml.safe_load(_config_file(tmp_path, output, stages).read_text())), client,
                      progress=False).run()

    out = tmp_path / "out"
    run(out, CHAIN)
    read_manifest = (out / "00-read" / "_manifest.json").stat().st_mtime_ns
    changed = [*CHAIN[:3], {"gopher_quality": {"min_words": 120}}, CHAIN[4]]
    run(out, changed)
    run(tmp_path / "fresh", changed)
    assert digest_tree(out) == digest_tree(tmp_path / "fresh")
    assert (out / "00-read" / "_manifest.json").stat().st_mtime_ns == read_manifest  # the read stage: not redone
    assert read_json(out / "04-gopher_quality" / "_manifest.json")["params"]["min_words"] == 120
    assert ({k: _without_timings(m) for k, m in _manifests(out).items()}
            == {k: _without_timings(m) for k, m in _manifests(tmp_path / "fresh").items()})
