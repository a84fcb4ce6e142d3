"""Fused map stages (pipeline/fuse.py): consecutive map stages run in one task per part and
only the last one writes its kept documents; every stage's rejected documents, commit records
and stats stay what they are when each stage runs alone (`--keep-intermediate`). A run killed
inside a fused task resumes to the same bytes, and a changed stage inside a chain reruns it
from the last stage whose documents were written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import parse_config
from pipeline.fuse import groups, merge_plan
from pipeline.io import read_json
from pipeline.options import ReadOptions
from pipeline.parts import read_part
from pipeline.progress import largest_first
from pipeline.report.sources import document_files
from pipeline.runner import Runner
from pipeline.stage import REGISTRY, Filter, build_stage
from tests.conftest import REPO, shared_path
from tests.pipeline.test_runner import digest_tree

KILL_AT, KILL_MARKER = "THRESHER_TEST_KILL_AT", "THRESHER_TEST_KILL_MARKER"  # a document id; a file: once


class SigkillOnce(Filter):
    """Test only: keeps everything, but SIGKILLs the whole run (its process group) when it
    meets the document that $THRESHER_TEST_KILL_AT names, the first time (no marker file yet)."""

    name = "test_sigkill_once"

    def filter(self, doc):
        marker = os.environ.get(KILL_MARKER, "")
        if doc.id == os.environ.get(KILL_AT) and marker and not os.path.exists(marker):
            Path(marker).write_text("killed")
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return None


def drive(config: str) -> None:
    """`thresher run CONFIG` with the test stage registered (run with `python -c`)."""
    from pipeline.cli import main

    REGISTRY[SigkillOnce.name] = SigkillOnce
    sys.exit(main(["run", config, "--workers", "2", "--no-progress"]))


@pytest.fixture
def kill_stage(monkeypatch):
    monkeypatch.setitem(REGISTRY, SigkillOnce.name, SigkillOnce)


def _inputs() -> list[dict]:
    return [{"path": str(shared_path("web_text_cc2019_sample") / "*.jsonl.gz"), "format": "jsonl", "source": "cc"},
            {"path": str(shared_path("dedup_plagiarism_short_answers") / "documents.jsonl"), "format": "jsonl",
             "source": "answers", "domain": "education"}]


# read -> language -> the web filters (two of them scoped) -> exact_dedup -> min_chars, max_chars
STAGES = [{"language": {"keep": ["en"], "min_score": 0.5}}, {"url_blocklist": {}}, {"gopher_repetition": {}},
          {"gopher_quality": {"write_scores": True, "skip": {"domain": ["education"]}}},
          {"c4_quality": {"only": {"source": ["cc"]}}}, {"fineweb_quality": {}}, {"pii": {}},
          {"exact_dedup": {}}, {"min_chars": {"min_chars": 100}}, {"max_chars": {"max_chars": 100000}}]


def _run(client, output: Path, stages: list, keep_intermediate: bool = False) -> dict:
    config = parse_config({"output": str(output), "inputs": _inputs(), "stages": stages,
                           "read": {"max_docs_per_part": 50}})
    return Runner(config, client, progress=False, keep_intermediate=keep_intermediate).run()


def _without_timings(manifest: dict) -> dict:
    drop = {"wall_seconds", "materialized", "fused_into", "chain", "parts", "views"}
    out = {k: v for k, v in manifest.items() if k not in drop}
    out["stats"] = {k: v for k, v in manifest["stats"].items() if k != "seconds"}
    return out


def _rows(folder: Path) -> list[dict]:
    """The rows of a folder's parts, in part order: a finished stage's as its manifest lists them
    (views of an earlier stage's parts read through pipeline/parts.py), else its `part-*.parquet`."""
    if (folder / "_manifest.json").exists():
        parts = read_json(folder / "_manifest.json")["parts"]
        return [r for p in parts for r in read_part(str(folder / p)).to_pylist()]
    return [r for p in sorted(folder.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def _manifests(output: Path) -> dict[str, dict]:
    return {p.parent.name: read_json(p) for p in sorted(output.glob("*/_manifest.json"))}


def test_chains_end_at_global_stages_materialized_stages_and_the_last_stage():
    stages = [build_stage(n, {}) for n in ("extract", "language", "pii", "exact_dedup", "min_chars", "max_chars")]
    assert groups(stages) == [[0], [1, 2], [3], [4, 5]]  # extract materializes: filters rerun from its text
    assert groups(stages, keep_all=True) == [[0], [1], [2], [3], [4], [5]]
    stages[0].materialize, stages[1].materialize = False, True
    assert groups(stages) == [[0, 1], [2], [3], [4, 5]]
    config = parse_config({"output": "o", "inputs": _inputs()[:1],
                           "stages": [{"language": {"materialize": True}}, {"extract": {"materialize": False}}, "pii"]})
    assert [s.materialize for s in config.build_stages()] == [True, False, False]
    assert yaml.safe_load(config.to_yaml())["stages"][0] == {"language": {"keep": None, "min_score": 0.0,
                                                                          "max_chars": 10000, "materialize": True}}
    for bad, message in ((["exact_dedup", {"materialize": True}], "only map stages"),
                         (["pii", {"materialize": "yes"}], "must be true or false")):
        with pytest.raises(ValueError, match=message):
            parse_config({"output": "o", "inputs": _inputs()[:1], "stages": [{bad[0]: bad[1]}]})


def test_a_fused_run_writes_the_bytes_and_stats_of_an_unfused_run(client, tmp_path):
    fused = _run(client, tmp_path / "fused", STAGES)
    unfused = _run(client, tmp_path / "unfused", STAGES, keep_intermediate=True)
    opted_out = [{name: {**params, "materialize": True}} for s in STAGES for name, params in s.items()
                 if name != "exact_dedup"]
    opted_out.insert(7, {"exact_dedup": {}})
    _run(client, tmp_path / "opted_out", opted_out)

    a, b = digest_tree(tmp_path / "fused"), digest_tree(tmp_path / "unfused")
    views = {k for k in a if "/_views/" in k}  # exact_dedup wrote views of pii's parts, not copies
    assert views and {k.split("/")[0] for k in views} == {"08-exact_dedup"}
    assert {k: b[k] for k in a if k not in views} == {k: v for k, v in a.items() if k not in views}
    intermediate = [f"{i:02d}-{next(iter(s))}" for i, s in enumerate(STAGES[:6], start=1)]
    assert {k.split("/")[0] for k in set(b) - set(a)} == {*intermediate, "08-exact_dedup", "09-min_chars"}
    assert _rows(tmp_path / "fused" / "08-exact_dedup") == _rows(tmp_path / "unfused" / "08-exact_dedup")
    assert all("/rejected/" not in k for k in set(b) - set(a))  # rejected parts are written fused too
    # Opting every stage out: each stage begins a run of map stages and merges small parts, so
    # the files are cut elsewhere, around the same documents in the same order.
    for stage in [*intermediate, "07-pii", "08-exact_dedup", "09-min_chars", "10-max_chars"]:
        for sub in ("", "rejected"):
            assert _rows(tmp_path / "opted_out" / stage / sub) == _rows(tmp_path / "unfused" / stage / sub), stage
    assert [s["docs_out"] for s in fused["stages"]] == [s["docs_out"] for s in unfused["stages"]]
    assert fused["stages"][5]["docs_rejected"] > 0 and fused["stages"][4]["counters"]["scope.passed_through"] > 0

    fused_m, unfused_m = _manifests(tmp_path / "fused"), _manifests(tmp_path / "unfused")
    assert {k: _without_timings(m) for k, m in fused_m.items()} == {k: _without_timings(m) for k, m in
                                                                     unfused_m.items()}
    language = fused_m["01-language"]
    assert language["materialized"] is False and language["parts"] == [] and language["fused_into"] == "07-pii"
    assert language["chain"] == [*intermediate, "07-pii"] and sum(language["rows"].values()) == fused["stages"][1][
        "docs_out"]
    assert fused_m["07-pii"]["materialized"] is True and fused_m["07-pii"]["parts"] == unfused_m["07-pii"]["parts"]
    assert "chain" not in unfused_m["01-language"] and unfused_m["01-language"]["materialized"] is True
    records = sorted((tmp_path / "fused" / "01-language" / "_stats").glob("*.json"))
    assert len(records) == len(fused_m["00-read"]["parts"]) and json.loads(records[0].read_text())["files"] in (
        [], [f"rejected/{records[0].stem}"])
    # the report's readers: a fused stage lists no parts; pointing `thresher stats` at it says where they went
    with pytest.raises(ValueError, match=r"went on to 07-pii.*--keep-intermediate"):
        document_files(str(tmp_path / "fused" / "01-language"))
    assert document_files(str(tmp_path / "fused" / "07-pii"))


CHAIN = [{"language": {"keep": ["en"], "min_score": 0.5}}, {"gopher_repetition": {}}, {"test_sigkill_once": {}},
         {"gopher_quality": {}}, {"fineweb_quality": {}}]


def _config_file(tmp_path: Path, output: Path, stages: list) -> Path:
    path = tmp_path / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump({"output": str(output), "inputs": _inputs()[:1], "stages": stages,
                                    "read": {"max_docs_per_part": 40}}))
    return path


def test_a_run_killed_inside_a_fused_task_resumes_to_the_same_bytes(client, kill_stage, tmp_path):
    reference = tmp_path / "reference"
    Runner(parse_config(yaml.safe_load(_config_file(tmp_path, reference, CHAIN).read_text())), client,
           progress=False).run()
    # the kill: on a document that reaches the test stage, in the part that starts last (smallest)
    read_parts = read_json(reference / "00-read" / "_manifest.json")["parts"]
    sizes = [(reference / "00-read" / p).stat().st_size for p in read_parts]
    last_stage = reference / "05-fineweb_quality"
    part = next(read_parts[i] for i in reversed(largest_first(sizes))
                if pq.read_metadata(last_stage / read_parts[i]).num_rows)
    doc_id = pq.read_table(last_stage / part, columns=["id"])["id"][0].as_py()

    killed = tmp_path / "killed"
    config = _config_file(tmp_path, killed, CHAIN)
    env = {**os.environ, KILL_AT: doc_id, KILL_MARKER: str(tmp_path / "killed-once"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", f"from tests.pipeline.test_fuse import drive; drive({str(config)!r})"],
                          cwd=REPO, env=env, start_new_session=True, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # killed inside the task: the part's records for the stages before the kill are written, not after
    stats = {d: killed / d / "_stats" / f"{part}.json" for d in ("01-language", "02-gopher_repetition",
                                                                 "03-test_sigkill_once", "05-fineweb_quality")}
    assert stats["01-language"].exists() and stats["02-gopher_repetition"].exists()
    assert not stats["03-test_sigkill_once"].exists() and not stats["05-fineweb_quality"].exists()
    assert not (killed / "05-fineweb_quality" / "_manifest.json").exists()
    assert list((killed / "05-fineweb_quality" / "_stats").glob("*.json")), "the kill came before any part"

    Runner(parse_config(yaml.safe_load(config.read_text())), client, progress=False).run()
    assert digest_tree(killed) == digest_tree(reference)
    assert ({k: _without_timings(m) for k, m in _manifests(killed).items()}
            == {k: _without_timings(m) for k, m in _manifests(reference).items()})


def test_a_changed_stage_inside_a_chain_reruns_from_the_last_written_stage(client, kill_stage, tmp_path):
    def run(output: Path, stages: list, keep_intermediate: bool = False) -> dict:
        config = parse_config(yaml.safe_load(_config_file(tmp_path, output, stages).read_text()))
        return Runner(config, client, progress=False, keep_intermediate=keep_intermediate).run()

    out = tmp_path / "out"
    run(out, CHAIN)
    untouched = {d: (out / d / "_manifest.json").stat().st_mtime_ns for d in ("01-language", "02-gopher_repetition")}
    changed = [*CHAIN[:3], {"gopher_quality": {"min_words": 120}}, CHAIN[4]]
    run(out, changed)
    run(tmp_path / "fresh", changed)
    assert digest_tree(out) == digest_tree(tmp_path / "fresh")
    assert {d: (out / d / "_manifest.json").stat().st_mtime_ns for d in untouched} == untouched  # not rerun
    assert read_json(out / "04-gopher_quality" / "_manifest.json")["params"]["min_words"] == 120

    # every stage's documents asked for: the intermediate stages are computed again and written
    run(out, changed, keep_intermediate=True)
    run(tmp_path / "fresh-unfused", changed, keep_intermediate=True)
    assert digest_tree(out) == digest_tree(tmp_path / "fresh-unfused")
    # and back to fused: nothing to do (the written stages are finished, whatever they hold)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/_manifest.json")}
    run(out, changed)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/_manifest.json")} == mtimes


def test_a_merge_plan_groups_consecutive_parts_within_the_limits():
    names = list("abcdefghi")
    sizes = [10, 10, 90, 50, 60, 0, 0, 100, 5]
    assert merge_plan(names, [1] * 9, sizes, 100, None) == [["a", "b"], ["c"], ["d"], ["e", "f", "g"], ["h"], ["i"]]
    assert merge_plan(names, [1] * 9, sizes, 100, 2) == [["a", "b"], ["c"], ["d"], ["e", "f"], ["g", "h"], ["i"]]
    assert merge_plan(names, [1] * 9, [500] * 9, 100, None) == [[n] for n in names]  # each over the limit: alone
    assert merge_plan([], [], [], 100, None) == []
    defaults = ReadOptions()
    assert (defaults.max_bytes_per_part, defaults.max_docs_per_part) == (128 << 20, 100_000)
    assert ReadOptions(max_bytes_per_part="64MiB", max_docs_per_part=None).max_bytes_per_part == 64 << 20
    with pytest.raises(ValueError, match="not a size"):
        ReadOptions(max_bytes_per_part="lots")


def _small_files(folder: Path) -> None:
    """12 files of one ~4,500-byte document and one of ~12,000 (too long for the first stage),
    and one file of twelve ~4,500-byte documents."""
    folder.mkdir()
    sentence = "the council approved the new budget for schools and roads. "
    for f in range(12):
        texts = [f"file {f}: " + sentence * 75, f"file {f} appendix: " + sentence * 200]
        (folder / f"f{f:02d}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (folder / "g-big.jsonl").write_text("".join(json.dumps({"text": f"big {i}: " + sentence * 75}) + "\n"
                                                for i in range(12)))


def test_small_parts_are_merged_in_order_after_stages_that_shrink_the_data(client1, client2, tmp_path):
    _small_files(tmp_path / "in")

    def run(client, output: Path) -> dict:
        config = parse_config({"output": str(output), "inputs": [{"path": str(tmp_path / "in" / "*.jsonl"),
                                                                  "format": "jsonl", "source": "s"}],
                               "read": {"max_bytes_per_part": 40_000, "max_docs_per_part": None},
                               "stages": [{"max_chars": {"max_chars": 8000}}, "exact_dedup",
                                          {"min_chars": {"min_chars": 10}}]})
        return Runner(config, client, progress=False).run()

    run(client2, tmp_path / "two")
    out = tmp_path / "two"
    m = _manifests(out)
    read_parts = m["00-read"]["parts"]
    assert len(read_parts) == 14 and [m["00-read"]["rows"][p] for p in read_parts[-2:]] == [10, 2]  # the big file
    assert all(16_000 < m["00-read"]["bytes"][p] < 17_000 for p in read_parts[:12])
    # max_chars: its input's parts in pairs (two files ~33,000 bytes), named after the first
    assert m["01-max_chars"]["parts"] == [*read_parts[0:12:2], *read_parts[12:]]
    record = read_json(out / "01-max_chars" / "_stats" / f"{read_parts[0]}.json")
    assert record["inputs"] == read_parts[:2] and record["rows"] == 2 and record["docs_in"] == 4
    # it kept ~27% of the bytes; after exact_dedup the next map stage merges four of its parts
    dedup = m["02-exact_dedup"]["parts"]
    assert m["03-min_chars"]["parts"] == [dedup[0], dedup[4], dedup[6], dedup[7]]
    assert _rows(out / "03-min_chars") == _rows(out / "02-exact_dedup") == _rows(out / "01-max_chars")
    assert [r["text"][:7] for r in _rows(out / "03-min_chars")[:3]] == ["file 0:", "file 1:", "file 2:"]
    # the same parts on one worker, and after a kill that left a merged part uncommitted
    run(client1, tmp_path / "one")
    assert digest_tree(tmp_path / "one") == digest_tree(out)
    (out / "03-min_chars" / "_manifest.json").unlink()
    (out / "03-min_chars" / "_stats" / f"{dedup[4]}.json").unlink()
    (out / "03-min_chars" / dedup[4]).write_bytes(b"half a part")
    run(client1, out)
    assert digest_tree(tmp_path / "one") == digest_tree(out)
