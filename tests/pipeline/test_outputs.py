"""Every stage's parts open with the tools users read them with — `datasets`, DuckDB, pandas and
pyarrow.dataset — also when some parts hold no rows (a filter that drops a whole part): such a
part is a Parquet file with its schema and no row group (pipeline/io.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import yaml
from datasets import load_dataset

from pipeline import progress as progress_module
from pipeline.config import parse_config
from pipeline.parts import read_part
from pipeline.runner import Runner
from tests.conftest import REPO


def _jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def _stage_dirs(output: Path) -> list[Path]:
    return sorted(p for p in output.iterdir() if p.is_dir() and (p / "_manifest.json").exists())


def test_parts_with_no_rows_load_everywhere(client, tmp_path):
    long = "The quarterly report shows revenue growth across every region of the company. "
    _jsonl(tmp_path / "a.jsonl", ["tiny", "short", "small"])  # one read part, emptied by min_chars
    _jsonl(tmp_path / "b.jsonl", [long * (i + 2) for i in range(5)] + [long * 2])  # the last one a duplicate
    config = parse_config({
        "output": str(tmp_path / "out"), "read": {"max_docs_per_part": 3},
        "inputs": [{"path": str(tmp_path / "*.jsonl"), "format": "jsonl", "source": "s", "domain": "d"}],
        "stages": [{"min_chars": {"min_chars": 50}}, {"exact_dedup": {}}, {"max_chars": {"max_chars": 10**6}}],
    })
    Runner(config, client, progress=False, keep_intermediate=True).run()  # every stage writes its parts
    default = config.model_copy(update={"output": str(tmp_path / "default")})
    Runner(default, client, progress=False).run()  # exact_dedup writes views: same rows, no files

    stages = _stage_dirs(tmp_path / "out")
    assert [p.name for p in stages] == ["00-read", "01-min_chars", "02-exact_dedup", "03-max_chars"]
    expected = {"00-read": 9, "01-min_chars": 6, "02-exact_dedup": 5, "03-max_chars": 5}
    views = json.loads((tmp_path / "default" / "02-exact_dedup" / "_manifest.json").read_text())
    assert views["views"] is True and not list((tmp_path / "default" / "02-exact_dedup").glob("part-*"))
    assert [read_part(str(tmp_path / "default" / "02-exact_dedup" / p)) for p in views["parts"]] == [
        pq.read_table(tmp_path / "out" / "02-exact_dedup" / p) for p in views["parts"]]
    saw_empty = False
    for stage in stages:
        manifest = json.loads((stage / "_manifest.json").read_text())
        files = [str(stage / p) for p in manifest["parts"]]
        rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
        saw_empty |= 0 in rows
        assert sum(rows) == expected[stage.name], stage.name
        loaded = load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
        assert loaded.num_rows == expected[stage.name], stage.name
        assert sorted(loaded["id"]) == sorted(pd.concat(pd.read_parquet(f) for f in files)["id"])
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r})").fetchall()[0][0] == expected[stage.name]
        assert ds.dataset(files, format="parquet").count_rows() == expected[stage.name]
        for file, n in zip(files, rows):  # each part alone, the empty ones too
            if n:  # `datasets` refuses every split with no rows, whatever the file ("corresponds to no data")
                assert load_dataset("parquet", data_files=[file], split="train",
                                    cache_dir=str(tmp_path / "hf")).num_rows == n
            assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{file}')").fetchall()[0][0] == n
            assert len(pd.read_parquet(file)) == n
    assert saw_empty, "the run should have produced at least one part with no rows"


def test_a_run_logged_to_a_file_has_one_line_per_stage_and_no_carriage_returns(tmp_path):
    _jsonl(tmp_path / "a.jsonl", [f"document number {i} " * 20 for i in range(30)])
    config = {"output": str(tmp_path / "out"), "read": {"max_docs_per_part": 10},
              "inputs": [{"path": str(tmp_path / "a.jsonl"), "format": "jsonl", "source": "s"}],
              "stages": [{"min_chars": {"min_chars": 10}}, {"exact_dedup": {}}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    with open(tmp_path / "run.log", "w") as log_file:
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(tmp_path / "run.yaml"),
                               "--workers", "1"], cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, check=False)
    text = (tmp_path / "run.log").read_text()
    assert done.returncode == 0, text
    assert "\r" not in text
    for stage in ("00-read", "01-min_chars", "02-exact_dedup"):
        assert len(re.findall(rf"^\[{stage}\] started: ", text, re.M)) == 1, text
        assert len(re.findall(rf"^\[{stage}\] \d+ in -> \d+ kept, \d+ rejected \(\d+\.\ds\)$", text, re.M)) == 1, text


def test_progress_off_a_terminal_is_a_line_now_and_then(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    with progress_module.Progress(3, "01-extract", "part", enabled=True) as progress:
        progress.update(1)
        progress.update(2)  # all done: no line, the stage's summary line follows
    err = capsys.readouterr().err
    assert err == "[01-extract] 1/3 parts done, 0s\n"
    with progress_module.Progress(3, "01-extract", "part", enabled=False) as progress:
        progress.update(1)
    assert capsys.readouterr().err == ""
