"""`thresher head` on the demo's output (the session's `demo_run`): a stage's documents in manifest
order, its rejected ones with their reasons, --where, --json and --columns, and --diff before and
after extraction, a filter and a stage that rewrites text (pii, on a run of its own)."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.slow
THRESHER = [sys.executable, "-m", "pipeline.cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(THRESHER + [str(a) for a in args], capture_output=True, text=True, cwd=REPO, timeout=300)


def head(capsys, *args) -> tuple[int, str, str]:
    """`thresher head ARGS` in this process: (exit status, stdout, stderr)."""
    status = main(["head", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def json_rows(capsys, *args) -> list[dict]:
    status, out, err = head(capsys, *args, "--json")
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


def manifest(stage_dir) -> dict:
    return json.loads((stage_dir / "_manifest.json").read_text())


def stage_ids(stage_dir) -> list[str]:
    """The ids of a stage's documents in manifest order."""
    parts = manifest(stage_dir)["parts"]
    return [i for p in parts for i in pq.read_table(stage_dir / p, columns=["id"])["id"].to_pylist()]


def test_head_prints_the_runs_last_documents_readably(demo_run):
    proc = cli("head", demo_run.out)
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.split("── ")[1:]
    assert len(blocks) == 5 and all(b.startswith(f"[{i}] 16-mix") for i, b in enumerate(blocks, start=1))
    first = dict(line.strip().split(":", 1) for line in blocks[0].splitlines()[1:])
    assert list(first) == ["id", "url", "source", "domain", "length", "text"]  # no reason: kept documents
    assert first["id"].strip() == stage_ids(demo_run.out / "16-mix")[0]
    assert first["length"].strip().endswith("chars") and len(first["text"].strip()) <= 301
    assert proc.stdout.rstrip().endswith("5 of 21 document(s) shown (-n N for more, --json for whole values)")


def test_a_stage_by_number_name_or_folder_in_manifest_order(capsys, demo_run):
    out = demo_run.out
    by_number = json_rows(capsys, out, "--stage", "8", "-n", "7")
    assert by_number == json_rows(capsys, out, "--stage", "pii", "-n", "7")
    assert by_number == json_rows(capsys, out, "--stage", "08-pii", "-n", "7")
    assert [r["id"] for r in by_number] == stage_ids(out / "08-pii")[:7]
    assert {r["folder"] for r in by_number} == {"08-pii"} and "raw" not in by_number[0]
    # A stage fused into a later one wrote no kept documents: one line says where they went.
    status, _, err = head(capsys, out, "--stage", "gopher_quality")
    assert status == 2 and len(err.splitlines()) == 1
    assert "05-gopher_quality ran fused into 08-pii, so its kept documents were not written" in err
    status, _, err = head(capsys, out, "--stage", "gopher")
    assert status == 2 and err.startswith("thresher: error: --stage: no finished stage 'gopher' here; the stages "
                                          "are 00-read, 01-extract,") and len(err.splitlines()) == 1


def test_rejected_documents_come_with_their_reasons(capsys, demo_run):
    out = demo_run.out
    language = json_rows(capsys, out, "--stage", "language", "--rejected", "-n", "100")
    assert [r["reason"] for r in language] == ["language.language_not_kept"] * 4  # the de, fr, es, it pages
    every = json_rows(capsys, out, "--rejected", "-n", "1000")  # every stage's, in stage order
    receipt = json.loads((out / "stats.json").read_text())
    assert len(every) == receipt["summary"]["documents_rejected"]
    by_folder = {}
    for row in every:
        by_folder.setdefault(row["folder"], {}).setdefault(row["reason"], 0)
        by_folder[row["folder"]][row["reason"]] += 1
    assert by_folder == {s["dir"]: s["rejected"] for s in receipt["stages"] if s["docs_rejected"]}
    status, text, _ = head(capsys, out, "--rejected", "--stage", "0")
    assert status == 0 and "  reason:   read.invalid_json" in text
    assert "quarantined file in 00-read: crawl-00001.warc.gz  read.truncated_file" in text  # the demo's cut WARC


def test_where_filters_on_columns_and_length(capsys, demo_run):
    out = demo_run.out
    table = pq.read_table(out / "01-extract")
    newswire = [i for i, s in zip(table["id"].to_pylist(), table["source"].to_pylist()) if s == "newswire"]
    rows = json_rows(capsys, out, "--stage", "extract", "--where", "source == 'newswire'", "-n", "100")
    assert sorted(r["id"] for r in rows) == sorted(newswire) and newswire
    long = json_rows(capsys, out, "--stage", "extract", "--where", "length > 800 and source == 'crawl'",
                     "--columns", "id,length", "source", "-n", "100")
    assert long and all(set(r) == {"folder", "id", "length", "source"} for r in long)
    assert all(r["length"] > 800 and r["source"] == "crawl" for r in long)
    near = json_rows(capsys, out, "--rejected", "--where", "reason.str.startswith('remove_duplicates')", "-n", "100")
    assert len(near) == manifest(out / "13-remove_duplicates")["stats"]["docs_rejected"]
    status, _, err = head(capsys, out, "--where", "sorce == 'web'")
    assert status == 2 and "source, domain" in err
    assert """--where "sorce == 'web'": UndefinedVariableError: name 'sorce' is not defined""" in err


def test_a_stage_folder_and_a_single_part(capsys, demo_run):
    stage = demo_run.out / "08-pii"
    part = stage / manifest(stage)["parts"][1]
    assert [r["id"] for r in json_rows(capsys, stage, "-n", "3")] == stage_ids(stage)[:3]
    assert [r["id"] for r in json_rows(capsys, part, "-n", "2")] == pq.read_table(part)["id"].to_pylist()[:2]
    # A fused stage's folder still holds what it rejected.
    rejected = json_rows(capsys, demo_run.out / "05-gopher_quality", "--rejected")
    assert [r["reason"] for r in rejected] == ["gopher_quality.too_few_words"]


def test_diff_of_extraction_shows_the_page_then_its_text(demo_run):
    proc = cli("head", demo_run.out, "--diff", "extract")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    first = stage_ids(demo_run.out / "00-read")[0]  # no --id: the first document the stage changed
    assert lines[0].startswith(f"document {first}  https://")
    assert lines[1].startswith("before: 00-read  raw page") and lines[2].startswith("after:  01-extract  text")
    assert "changed: metadata.title: - -> " in proc.stdout
    page, text = lines.index("── 00-read: raw page"), lines.index("── 01-extract: text")
    assert lines[page + 1] == "<!DOCTYPE html>" and page < text and "cookie" not in "\n".join(lines[text:])


def test_diff_names_the_stage_that_dropped_a_document(capsys, demo_run):
    out = demo_run.out
    dropped = pq.read_table(out / "05-gopher_quality" / "rejected")["id"][0].as_py()
    status, text, _ = head(capsys, out, "--diff", "pii", "--id", dropped)  # across the fused filters
    assert status == 0
    assert text.splitlines()[1:] == [
        "before: 01-extract  text, 235 chars",
        "after:  not in 08-pii: dropped by 05-gopher_quality (gopher_quality.too_few_words)"]
    status, _, err = head(capsys, out, "--diff", "language", "gopher_quality", "--id", dropped)
    assert status == 2 and "02-language ran fused into 08-pii" in err
    status, text, _ = head(capsys, out, "--diff", "classify")  # scores change, text does not
    assert status == 0 and "changed: quality_score: - -> " in text and text.rstrip().endswith("text unchanged")
    status, _, err = head(capsys, out, "--diff", "select", "remove_duplicates")
    assert status == 2 and "--diff: 15-select does not come before 13-remove_duplicates" in err


def test_diff_of_rewritten_text_is_a_unified_diff(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"Line one.\nWrite to ann{i}@corp.example today.\nLast line."}) + "\n"
                            for i in range(3)))
    config = {"output": str(tmp_path / "out"), "inputs": [{"path": str(docs), "format": "jsonl", "source": "s"}],
              "stages": [{"pii": {}}]}
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    assert cli("run", tmp_path / "run.yaml", "--workers", "1", "--no-progress").returncode == 0
    proc = cli("head", tmp_path / "out", "--diff", "pii", "--id", "s/docs.jsonl:2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[3:] == [
        "--- 00-read/s/docs.jsonl:2", "+++ 01-pii/s/docs.jsonl:2", "@@ -1,3 +1,3 @@", " Line one.",
        "-Write to ann1@corp.example today.", "+Write to email@example.com today.", " Last line."]
    result = json.loads(cli("head", tmp_path / "out", "--diff", "pii", "--json").stdout)
    assert result["id"] == "s/docs.jsonl:1" and result["stages"] == ["00-read", "01-pii"]
    assert result["before"]["text"].count("ann0@corp.example") == 1 and "+Write to email@example.com" in result["diff"]
