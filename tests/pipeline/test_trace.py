"""`thresher trace` on finished runs (the demo's output, and a run over the shared real WARCs):
a token of a shard leads back to its WARC file and record offset, every stage's recorded
decision agrees with that stage's files, the three query forms find the same document, a
rejected document names its stage and reason, `--json` parses, and the report shows each
example's trace command."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
from warcio.archiveiterator import ArchiveIterator

from pipeline.config import parse_config
from pipeline.parts import read_part
from pipeline.runner import Runner
from tests.conftest import REPO, shared_path
from tests.pipeline.conftest import THRESHER


def trace(out: Path, *args: str) -> dict:
    proc = subprocess.run(THRESHER + ["trace", str(out), *args, "--json"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def ids_in(files: list[Path]) -> set[str]:
    """Ids of stage parts, read as the next stage reads them (a part may be a view: pipeline/parts.py)."""
    return {i for f in files for i in read_part(str(f), columns=["id"]).column("id").to_pylist()}


def rejected_rows(stage: Path) -> list[dict]:
    return [r for f in sorted((stage / "rejected").glob("*.parquet"))
            for r in pq.read_table(f, columns=["id", "reason", "metadata"]).to_pylist()]


def sidecar(shard: Path) -> list[dict]:
    return pq.read_table(shard.with_name(shard.name + ".docs.parquet")).to_pylist()


def warc_record_at(path: str, offset: int):
    """The WARC record starting at byte `offset` of `path` (headers only)."""
    with open(path, "rb") as f:
        f.seek(offset)
        record = next(iter(ArchiveIterator(f, check_digests=False)))
        return record.rec_headers.get_header("WARC-Record-ID"), record.rec_headers.get_header("WARC-Target-URI")


def check_decisions(out: Path, result: dict) -> None:
    """Each stage's recorded decision against that stage's own files."""
    for entry in result["stages"][:-1] if result["tokens"] else result["stages"]:
        stage = out / entry["stage"]
        rejected = {r["id"]: r["reason"] for r in rejected_rows(stage)}
        if entry["decision"] == "rejected":
            assert rejected[result["id"]] == entry["reason"]
            continue
        assert entry["decision"] == "kept" and result["id"] not in rejected
        if not entry.get("inferred"):
            assert result["id"] in ids_in([stage / entry["file"]])
        else:
            assert json.loads((stage / "_manifest.json").read_text())["materialized"] is False


def test_a_token_leads_back_to_its_warc_record_and_every_stage_decision(demo_run):
    out = demo_run.out
    shard = out / "17-tokenize" / "financial" / "shard-00000"
    sequences = sidecar(shard)
    pick = next(s for s in sequences if s["original_id"].startswith("crawl/"))
    token = pick["token_offset"] + pick["tokens"] // 2
    result = trace(out, "--shard", "financial/shard-00000", "--token", str(token))
    assert result["query"]["sequence"] == pick["sequence"] and result["id"] == pick["original_id"]
    origin = result["origin"]
    assert origin["format"] == "warc" and Path(origin["file"]).is_file()
    assert origin["file"].endswith(pick["original_id"].split("/", 1)[1].rsplit("@", 1)[0])
    assert warc_record_at(origin["file"], origin["record_offset"]) == (origin["record_id"], origin["url"])
    assert origin["crawl_date"]
    # The sequence's tokens are the text the final stage holds for this document.
    from tokenization.indexed import IndexedDataset

    sp = spm.SentencePieceProcessor(model_file=str(out / "17-tokenize" / "tokenizer.model"))
    text = {r["id"]: r["text"] for f in (out / "16-mix").glob("part-*.parquet")
            for r in pq.read_table(f, columns=["id", "text"]).to_pylist()}[pick["id"]]
    assert sp.decode(IndexedDataset(str(shard))[pick["sequence"]].tolist()[:-1]) == text
    # Every stage of the run is listed in order, and each decision matches the stage's files.
    dirs = sorted(p.name for p in out.iterdir() if (p / "_manifest.json").exists())
    assert [e["stage"] for e in result["stages"]] == dirs
    check_decisions(out, result)
    assert any(e.get("inferred") for e in result["stages"])  # the demo's fused filter chain
    assert any(s["shard"] == "financial/shard-00000" and s["sequence"] == pick["sequence"]
               for s in result["tokens"]["sequences"])
    classify = next(e for e in result["stages"] if e["name"] == "classify")
    assert set(classify["scores"]) >= {"domain", "quality_score", "domain_score"}


def test_the_three_query_forms_find_the_same_document(demo_run):
    out = demo_run.out
    row = sidecar(out / "17-tokenize" / "general" / "shard-00000")[0]
    by_shard = trace(out, "--shard", "general/shard-00000", "--index", "0")
    by_doc = trace(out, "--doc", row["original_id"])
    text = {r["id"]: r["text"] for f in (out / "16-mix").glob("part-*.parquet")
            for r in pq.read_table(f, columns=["id", "text"]).to_pylist()}[row["id"]]
    by_text = {t["id"]: t for t in trace(out, "--text", text[:80])}  # near-duplicates may share it
    assert by_shard["id"] == by_doc["id"] == row["original_id"] and row["original_id"] in by_text
    assert by_shard["stages"] == by_doc["stages"] == by_text[row["original_id"]]["stages"]
    mix = next(e for e in by_doc["stages"] if e["name"] == "mix")
    assert [c["epoch"] for c in mix["copies"]] == sorted(c["epoch"] for c in mix["copies"])
    epochs = {s["epoch"] for s in by_doc["tokens"]["sequences"]} | {r["epoch"] for r in by_doc["tokens"]["rejected"]}
    assert epochs == {c["epoch"] for c in mix["copies"]}  # every copy ends in a shard or in tokenize's rejected/


def test_a_rejected_document_gives_the_stage_and_reason(demo_run):
    out = demo_run.out
    row = rejected_rows(out / "06-c4_quality")[0]  # a stage that ran fused: only rejected/ was written
    result = trace(out, "--doc", row["id"])
    assert result["stages"][-1] == {**result["stages"][-1], "stage": "06-c4_quality", "decision": "rejected",
                                    "reason": row["reason"]}
    assert result["fate"] == f"rejected at 06-c4_quality: {row['reason']}" and result["tokens"] is None
    check_decisions(out, result)
    removed = rejected_rows(out / "13-remove_duplicates")[0]
    result = trace(out, "--doc", removed["id"])
    assert result["stages"][-1]["details"]["duplicate_of"] == json.loads(removed["metadata"])["duplicate_of"]
    kept = trace(out, "--doc", result["stages"][-1]["details"]["duplicate_of"])
    dedup = next(e for e in kept["stages"] if e["stage"] == "13-remove_duplicates")
    assert removed["id"] in dedup["details"]["representative_of"]
    broken = next(r for r in rejected_rows(out / "00-read") if r["reason"] == "read.invalid_json")
    result = trace(out, "--doc", broken["id"])
    assert result["origin"]["line"] == int(broken["id"].rsplit(":", 1)[1]) and result["origin"]["format"] == "jsonl"
    assert [e["stage"] for e in result["stages"]] == ["00-read"]


def test_human_output_and_one_line_errors(demo_run):
    out = demo_run.out
    doc = rejected_rows(out / "09-exact_dedup")[0]["id"]
    proc = subprocess.run(THRESHER + ["trace", str(out), "--doc", doc], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "09-exact_dedup" in proc.stdout and "WARC record at byte" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1] == "fate: rejected at 09-exact_dedup: exact_dedup.duplicate"
    for args, message in [(["--doc", "crawl/nowhere@0"], "--doc: no document 'crawl/nowhere@0'"),
                          (["--shard", "general/shard-00000", "--index", "999"], "--index: general/shard-00000"),
                          (["--shard", "general/shard-00009", "--index", "0"], "--shard: no shard"),
                          (["--shard", "general/shard-00000", "--token", "99999999"], "--token: general/shard-00000"),
                          (["--doc", doc, "--text", "x"], "give exactly one of")]:
        proc = subprocess.run(THRESHER + ["trace", str(out), *args], capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_the_report_shows_each_example_trace_command(demo_run):
    html = (demo_run.out / "report" / "report.html").read_text()
    commands = re.findall(r"<code>thresher trace (\S+) --doc (\S+)</code>", html)
    assert len(commands) == html.count('<div class="snippet">') > 0
    rejected = {r["id"]: r["reason"] for f in demo_run.out.glob("*/rejected/*.parquet")
                for r in pq.read_table(f, columns=["id", "reason"]).to_pylist()}
    examples = [doc for path, doc in commands if doc in rejected]
    assert {path for path, _ in commands} == {str(demo_run.out)} and examples
    result = trace(demo_run.out, "--doc", examples[0])
    assert result["stages"][-1]["reason"] == rejected[examples[0]]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_trace_on_the_shared_real_warcs(demo_run, client, tmp_path):
    folder = shared_path("warc_real_crawls")
    model = demo_run.out / "17-tokenize" / "tokenizer.model"
    config = parse_config({"output": str(tmp_path), "inputs": [{"path": str(folder / "*.warc.gz"), "format": "warc",
                                                                "source": "crawl"}],
                           "stages": [{"extract": {}}, {"gopher_quality": {}}, {"exact_dedup": {}},
                                      {"tokenize": {"model": str(model), "valid_fraction": 0.0}}]})
    Runner(config, client, progress=False, guards=False).run()
    shard = next((tmp_path / "04-tokenize").glob("*/shard-00000.idx")).with_suffix("")
    row = sidecar(shard)[-1]
    result = trace(tmp_path, "--shard", f"{shard.parent.name}/{shard.name}", "--index", str(row["sequence"]))
    origin = result["origin"]
    assert warc_record_at(origin["file"], origin["record_offset"]) == (origin["record_id"], origin["url"])
    check_decisions(tmp_path, result)
    stage, dropped = next((s, rows[0]) for s in ("01-extract", "02-gopher_quality", "03-exact_dedup")
                          if (rows := rejected_rows(tmp_path / s)))
    result = trace(tmp_path, "--doc", dropped["id"])
    assert (result["stages"][-1]["stage"], result["stages"][-1]["reason"]) == (stage, dropped["reason"])
    assert warc_record_at(result["origin"]["file"], result["origin"]["record_offset"])[1] == result["origin"]["url"]
    views = json.loads((tmp_path / "03-exact_dedup" / "_manifest.json").read_text())
    assert views["views"] is True  # the final documents are views of 02-gopher_quality's parts
    final = read_part(str(tmp_path / "03-exact_dedup" / views["parts"][0]), columns=["id", "text"])
    found = trace(tmp_path, "--text", final["text"][0].as_py()[:60])
    assert final["id"][0].as_py() in [t["id"] for t in found]


def test_a_stage_that_lost_the_document_is_reported_not_papered_over(demo_run, tmp_path):
    out = tmp_path / "demo"
    shutil.copytree(demo_run.out, out, ignore=shutil.ignore_patterns("sample", "models", "report"), symlinks=True)
    part = out / "14-classify" / "part-00000-0000.parquet"
    table = pq.read_table(part)
    lost = table.column("id")[0].as_py()
    pq.write_table(table.slice(1), part)
    result = trace(out, "--doc", lost)
    assert result["stages"][-1]["stage"] == "14-classify" and result["stages"][-1]["decision"] == "unknown"
    assert result["fate"].startswith("lost at 14-classify")
