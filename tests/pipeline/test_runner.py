"""The runner end to end: real WARCs, broken inputs, resume after SIGKILL, and a real Dask
cluster started from the command line, each compared byte for byte with a local run."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import parse_config
from pipeline.context import GlobalContext
from pipeline.demo.warcs import Page, write_warc
from pipeline.progress import largest_first
from pipeline.runner import Runner
from tests.conftest import REPO, shared_path
from tests.pipeline.conftest import dask_processes
from tests.pipeline.test_readers import _members

THRESHER = [sys.executable, "-m", "pipeline.cli"]



def run(client, output: Path, inputs: list[dict], stages: list, **extra) -> dict:
    config = parse_config({"output": str(output), "inputs": inputs, "stages": stages, **extra})
    return Runner(config, client, progress=False).run()


def digest_tree(root: Path) -> dict[str, str]:
    """sha256 of every Parquet file under `root`, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def all_ids(stage_dir: Path) -> list[str]:
    return [i for p in sorted(stage_dir.glob("part-*.parquet"))
            for i in pq.read_table(p, columns=["id"])["id"].to_pylist()]


def test_real_warcs_every_html_response_becomes_a_document(client, tmp_path):
    folder = shared_path("warc_real_crawls")
    manifest = json.loads((folder / "manifest.json").read_text())
    summary = run(client, tmp_path, [{"path": str(folder / "*.warc.gz"), "format": "warc", "source": "crawl"}],
                  [{"extract": {}}, {"language": {}}])
    read, extract = summary["stages"][0], summary["stages"][1]
    assert read["docs_out"] == sum(e["response_html_status200"] for e in manifest)
    counters = read["counters"]
    for kind in ("request", "metadata", "warcinfo", "resource"):
        assert counters.get(f"skipped.{kind}", 0) == sum(e["record_types"].get(kind, 0) for e in manifest)
    assert counters["skipped.http_status"] == sum(e["response_html"] - e["response_html_status200"] for e in manifest)
    assert extract["docs_in"] == read["docs_out"] == extract["docs_out"] + extract["docs_rejected"]
    ids = all_ids(tmp_path / "02-language")
    assert len(ids) == len(set(ids)) == summary["summary"]["documents_out"]
    stage_manifest = json.loads((tmp_path / "01-extract" / "_manifest.json").read_text())
    assert stage_manifest["stats"]["docs_out"] == extract["docs_out"]
    # downstream tools read the output as it is
    from datasets import load_dataset

    dataset = load_dataset("parquet", data_files=str(tmp_path / "02-language" / "part-*.parquet"), split="train")
    assert len(dataset) == len(ids) and set(dataset.column_names) >= {"id", "text", "url", "language"}
    assert (tmp_path / "config.yaml").exists()


def _broken_inputs(root: Path) -> None:
    pages = [Page(f"https://ok.example/{i}", f"<html><body><article><p>Article {i}: the council approved "
                  f"the new budget after a long debate about school funding and roads.</p>"
                  f"</article></body></html>".encode())
             for i in range(3)]
    write_warc(root / "good.warc.gz", pages)
    truncated = write_warc(root / "cut.warc.gz", pages + pages)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 2 // 3])
    corrupt = write_warc(root / "corrupt.warc.gz", pages)
    data = corrupt.read_bytes()
    start, length = _members(corrupt)[5]  # warcinfo, then request/response/metadata per page
    member = gzip.decompress(data[start:start + length]).replace(b"WARC/1.0", b"WARC/x.y\x00garbage", 1)
    corrupt.write_bytes(data[:start] + gzip.compress(member, mtime=0) + data[start + length:])
    write_warc(root / "bad-pages.warc.gz", [
        Page("https://bin.example/logo", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
        Page("https://enc.example/", b"<html><body><p>" + bytes(range(128, 256)) * 40 + b"</p></body></html>"),
        Page("https://big.example/", b"<html><body>" + b"<p>filler text here.</p>" * 1_400_000 + b"</body></html>"),
    ])
    (root / "empty.warc.gz").write_bytes(b"")
    (root / "feed.jsonl").write_text('{"text": "a good line of text"}\n{"text": \n{"no_text": 1}\n')


def test_bad_input_never_stops_a_run(client, tmp_path):
    _broken_inputs(tmp_path / "in")
    summary = run(client, tmp_path / "out", [
        {"path": str(tmp_path / "in" / "*.warc.gz"), "format": "warc", "source": "crawl"},
        {"path": str(tmp_path / "in" / "*.jsonl"), "format": "jsonl", "source": "feed"},
    ], [{"extract": {}}], guards={"max_quarantined_files": 3})  # the three broken WARCs, on purpose
    read, extract = summary["stages"][0], summary["stages"][1]
    reasons = {q["file"]: q["reason"] for q in read["quarantine"]}
    assert reasons == {"cut.warc.gz": "read.truncated_file", "corrupt.warc.gz": "read.corrupt_record",
                       "empty.warc.gz": "read.empty_file"}
    assert read["rejected"] == {"read.invalid_json": 1, "read.missing_text_field": 1}
    assert extract["rejected"] == {"extract.binary_content": 1, "extract.undecodable": 1, "extract.page_too_large": 1}
    assert extract["docs_out"] == 3 + 4 + 2 + 1  # good, cut (4 whole pages), corrupt (2 of 3), feed
    rejected = pq.read_table(sorted((tmp_path / "out" / "01-extract" / "rejected").glob("*.parquet")))
    assert sorted(rejected["reason"].to_pylist()) == sorted(extract["rejected"])
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["summary"]["files_quarantined"] == 3


def test_rerun_skips_finished_stages_and_recomputes_changed_ones(client, tmp_path):
    inputs = [{"path": str(shared_path("web_text_cc2019_sample") / "*.jsonl.gz"), "format": "jsonl", "source": "cc"}]
    run(client, tmp_path, inputs, [{"language": {}}], read={"max_docs_per_part": 100})
    before = digest_tree(tmp_path)
    mtime = (tmp_path / "01-language" / "_manifest.json").stat().st_mtime_ns
    run(client, tmp_path, inputs, [{"language": {}}], read={"max_docs_per_part": 100})
    assert (tmp_path / "01-language" / "_manifest.json").stat().st_mtime_ns == mtime
    assert digest_tree(tmp_path) == before
    summary = run(client, tmp_path, inputs, [{"language": {"keep": ["en"]}}], read={"max_docs_per_part": 100})
    assert summary["stages"][1]["rejected"]["language.language_not_kept"] > 0
    assert not (tmp_path / "01-language" / "rejected").exists() or digest_tree(tmp_path) != before


def test_only_committed_parts_count_and_a_rerun_deletes_the_rest(client, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": "word " * (i % 7), "url": f"https://x.org/{i}"}) + "\n"
                            for i in range(40)))
    inputs = [{"path": str(docs), "format": "jsonl", "source": "s"}]
    stages = [{"min_chars": {"min_chars": 10}}]
    run(client, tmp_path / "reference", inputs, stages, read={"max_docs_per_part": 10})
    out = tmp_path / "out"
    run(client, out, inputs, stages, read={"max_docs_per_part": 10})
    # What a kill leaves: no manifest, a part written but not committed, stray uncommitted files.
    stage = out / "01-min_chars"
    (stage / "_manifest.json").unlink()
    first = sorted(stage.glob("part-*.parquet"))[0].name
    (stage / "_stats" / f"{first}.json").unlink()
    (stage / first).write_bytes(b"half a part")
    for stray in (stage / "part-99999-0000.parquet", stage / "rejected" / "part-99999-0000.parquet"):
        stray.write_bytes(b"never committed")
    second = sorted(stage.glob("part-*.parquet"))[1].name  # a record from before records listed files
    old = json.loads((stage / "_stats" / f"{second}.json").read_text())
    (stage / "_stats" / f"{second}.json").write_text(json.dumps({k: v for k, v in old.items() if k != "files"}))
    run(client, out, inputs, stages, read={"max_docs_per_part": 10})
    assert digest_tree(out) == digest_tree(tmp_path / "reference")
    manifest = json.loads((stage / "_manifest.json").read_text())
    assert manifest["parts"] == json.loads((tmp_path / "reference" / "01-min_chars" / "_manifest.json").read_text())[
        "parts"]
    record = json.loads((stage / "_stats" / f"{first}.json").read_text())
    assert first in record["files"] and record["docs_in"] == 10


def test_storage_options_are_redacted_in_the_written_config():
    config = parse_config({"output": "s3://b/out", "storage_options": {"secret": "s3cr3t"},
                           "inputs": [{"path": "x.jsonl", "format": "jsonl", "source": "s",
                                       "storage_options": {"key": "k3y"}}]})
    text = config.to_yaml()
    assert "s3cr3t" not in text and "k3y" not in text and text.count("<redacted>") == 2
    assert "storage_options" not in parse_config({"output": "o", "inputs": [
        {"path": "x.jsonl", "format": "jsonl", "source": "s"}]}).to_yaml()


def _cleaneval_config(tmp_path: Path, output: Path) -> Path:
    html = shared_path("extraction_cleaneval", "html")
    # Parts of four pages that no stage merges (a merge would make one part of the whole sample).
    config = {"output": str(output), "read": {"files_per_task": 4, "max_docs_per_part": 4},
              "inputs": [{"path": str(html / "final-1*.html.gz"), "format": "html", "source": "cleaneval"}],
              "stages": [{"extract": {}}, {"language": {}}]}
    path = tmp_path / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_sigkill_mid_extraction_then_rerun_gives_identical_output(tmp_path):
    reference = _cleaneval_config(tmp_path, tmp_path / "reference")
    subprocess.run(THRESHER + ["run", str(reference), "--workers", "2", "--no-progress"], check=True, cwd=REPO,
                   capture_output=True)
    killed = _cleaneval_config(tmp_path, tmp_path / "killed")
    proc = subprocess.Popen(THRESHER + ["run", str(killed), "--workers", "2", "--no-progress"], cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats_dir = tmp_path / "killed" / "01-extract" / "_stats"
    deadline = time.monotonic() + 300
    while len(list(stats_dir.glob("*.json"))) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "01-extract" / "_manifest.json").exists(), "the kill came too late"
    done_before = len(list(stats_dir.glob("*.json")))
    subprocess.run(THRESHER + ["run", str(killed), "--workers", "2", "--no-progress"], check=True, cwd=REPO,
                   capture_output=True)
    assert 5 <= done_before < len(list((tmp_path / "killed" / "01-extract").glob("part-*.parquet")))
    assert digest_tree(tmp_path / "killed") == digest_tree(tmp_path / "reference")
    ids = all_ids(tmp_path / "killed" / "02-language")
    assert len(ids) == len(set(ids)) == len(all_ids(tmp_path / "reference" / "02-language"))


@pytest.mark.slow
def test_dask_scheduler_and_workers_give_the_same_bytes_as_a_local_run(tmp_path):
    local = _cleaneval_config(tmp_path, tmp_path / "local")
    subprocess.run(THRESHER + ["run", str(local), "--workers", "1", "--no-progress"], check=True, cwd=REPO,
                   capture_output=True)
    with dask_processes(workers=2) as cluster:
        remote = _cleaneval_config(tmp_path, tmp_path / "remote")
        subprocess.run(THRESHER + ["run", str(remote), "--scheduler", cluster.address, "--no-progress"], check=True,
                       cwd=REPO, capture_output=True)
    assert digest_tree(tmp_path / "remote") == digest_tree(tmp_path / "local")
    assert len(digest_tree(tmp_path / "local")) > 10


def _square_and_time(x: int) -> tuple[int, float]:
    return x * x, time.monotonic()


def test_costliest_items_run_first_and_results_keep_item_order(client1, tmp_path):
    assert largest_first([3, 10, 3, 7]) == [1, 3, 0, 2] and largest_first([]) == []
    ctx = GlobalContext(client1, None, tmp_path, 0, progress=False)
    results = ctx.map(_square_and_time, [1, 2, 3, 4], "t", cost=[1, 40, 30, 20])
    assert [r[0] for r in results] == [1, 4, 9, 16]  # item order
    started = sorted(range(4), key=lambda i: results[i][1])
    assert started == [1, 2, 3, 0]  # one worker: submission order, costliest first


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("part 3 is broken")
    time.sleep(0.05 * x)
    return -x


def test_a_map_returns_results_in_order_and_raises_a_tasks_error(client2, tmp_path):
    ctx = GlobalContext(client2, None, tmp_path, 0, progress=True)
    assert ctx.map(_fail_on_three, [5, 1, 4, 0, 2], "t") == [-5, -1, -4, 0, -2]
    assert ctx.map(_fail_on_three, [], "t") == []
    with pytest.raises(ValueError, match="part 3 is broken"):
        ctx.map(_fail_on_three, [1, 3, 9, 9, 9], "t")
