"""Stage folders of an earlier config: a rerun with another stage list moves them to
`OUTPUT/_stale/<run-id>/` (or deletes them with --remove-stale), a changed stage's folder is
deleted before the first stage runs, and `thresher stats` reads only what config.yaml names. The
move is a copy and a delete on object stores (checked on fsspec's memory file system)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from pipeline import storage
from pipeline.io import write_bytes, write_json
from pipeline.readers import list_tasks
from pipeline.report.sources import run_stages
from pipeline.stale import STALE, change_reason, clear_stale, configured_dirs, find_stale
from tests.conftest import REPO

THRESHER = [sys.executable, "-m", "pipeline.cli"]


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(THRESHER + [str(a) for a in args], capture_output=True, text=True, cwd=REPO, timeout=600)


def write_config(path, out, stages: list) -> str:
    docs = path.parent / "docs.jsonl"
    if not docs.exists():
        docs.write_text("".join(json.dumps({"text": "word " * (i % 9 + 1), "url": f"https://x.org/{i}"}) + "\n"
                                for i in range(40)))
    path.write_text(yaml.safe_dump({"output": str(out), "read": {"max_docs_per_part": 10}, "stages": stages,
                                    "inputs": [{"path": str(docs), "format": "jsonl", "source": "s"}]}))
    return str(path)


@pytest.mark.slow
def test_a_rerun_moves_a_dropped_stage_aside_and_stats_counts_only_the_config(tmp_path):
    out = tmp_path / "out"
    ab = write_config(tmp_path / "ab.yaml", out, [{"pii": {}}, {"min_chars": {"min_chars": 20}}])
    ac = write_config(tmp_path / "ac.yaml", out, [{"pii": {}}, {"max_chars": {"max_chars": 30}}])
    assert cli("run", ab, "--workers", "1", "--no-progress").returncode == 0
    b_manifest = (out / "02-min_chars" / "_manifest.json").read_text()
    proc = cli("run", ac, "--workers", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    (run_id,) = [p.name for p in (out / STALE).iterdir()]
    moved = out / STALE / run_id / "02-min_chars"
    assert f"[02-min_chars] not in the config: moved to {moved} (thresher run --remove-stale deletes instead)" \
        in proc.stderr.splitlines()
    assert (moved / "_manifest.json").read_text() == b_manifest and not (out / "02-min_chars").exists()
    assert "[01-pii] done already, skipped" in proc.stderr  # A is kept and reused
    assert sorted(p.name for p in out.iterdir() if p.name[0].isdigit()) == ["00-read", "01-pii", "02-max_chars"]

    # A folder that no config names (left by an older thresher, copied in by hand) is not counted either.
    shutil.copytree(out / STALE / run_id / "02-min_chars", out / "03-gopher_quality")
    proc = cli("stats", out, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "report" / "stats.json").read_text())
    rows = [r for r in stats["funnel"]["rows"] if r["step"] != "raw records"]
    assert [r["dir"] for r in rows] == ["00-read", "01-pii", "02-max_chars"]
    kept = json.loads((out / "02-max_chars" / "_manifest.json").read_text())["stats"]["docs_out"]
    assert rows[-1]["documents"] == kept
    assert "03-gopher_quality" not in json.dumps(stats) and "min_chars" not in json.dumps(stats["funnel"])

    shutil.rmtree(out / "03-gopher_quality")
    proc = cli("run", ab, "--workers", "1", "--no-progress", "--remove-stale")
    assert proc.returncode == 0, proc.stderr
    assert "[02-max_chars] not in the config: removed (--remove-stale)" in proc.stderr.splitlines()
    assert not (out / "02-max_chars").exists() and [p.name for p in (out / STALE).iterdir()] == [run_id]


@pytest.mark.slow
def test_a_changed_stage_is_deleted_before_the_first_stage_runs(tmp_path, client):
    from pipeline.config import load_config
    from pipeline.runner import Runner

    out = tmp_path / "out"
    first = write_config(tmp_path / "a.yaml", out, [{"min_chars": {"min_chars": 20}}, {"pii": {}}])
    Runner(load_config(first), client, progress=False).run()
    changed = write_config(tmp_path / "b.yaml", out, [{"min_chars": {"min_chars": 10}}, {"pii": {}}])
    runner = Runner(load_config(changed), client, progress=False)
    plan = runner._plan(list_tasks(runner.config.inputs, runner.config.read), runner.config.build_stages())
    assert find_stale(str(out), plan) == ([], ["01-min_chars", "02-pii"])  # pii's input changed
    summary = runner.run()
    assert summary["stages"][1]["docs_out"] == json.loads((out / "01-min_chars" / "_manifest.json").read_text())[
        "stats"]["docs_out"]
    assert not (out / STALE).exists()  # changed folders are recomputed in place, as they always were


def fake_stage(folder: str, fingerprint: str, done: bool = True) -> None:
    write_json({"fingerprint": fingerprint}, storage.join(folder, "_stage.json"))
    write_bytes(b"x", storage.join(folder, "part-00000.parquet"))
    if done:
        write_json({"stage": storage.basename(folder).split("-", 1)[1], "fingerprint": fingerprint, "parts": []},
                   storage.join(folder, "_manifest.json"))


@pytest.mark.parametrize("root", ["local", "memory://stale-test"])
def test_clear_stale_moves_unnamed_folders_and_deletes_changed_ones(tmp_path, root, capsys):
    out = str(tmp_path / "out") if root == "local" else root
    for name, fingerprint in [("00-read", "r"), ("01-pii", "old"), ("02-min_chars", "m"), ("03-max_chars", "x")]:
        fake_stage(storage.join(out, name), fingerprint)
    fake_stage(storage.join(out, "04-select"), "s", done=False)  # a stage a killed run left unfinished
    storage.makedirs(storage.join(out, "2024-notes"))  # not a stage folder: no marker
    write_json({"mine": True}, storage.join(out, "2024-notes", "keep.json"))
    plan = [("00-read", "r"), ("01-pii", "new"), ("02-max_chars", "y")]
    assert find_stale(out, plan) == (["02-min_chars", "03-max_chars", "04-select"], ["01-pii"])

    moved = clear_stale(out, plan, run_id="run1")
    target = storage.join(out, STALE, "run1")
    assert moved == [storage.join(target, n) for n in ("02-min_chars", "03-max_chars", "04-select")]
    assert sorted(storage.listdir(out)) == ["00-read", "2024-notes", STALE]
    assert storage.walk_files(storage.join(target, "02-min_chars")) == [
        "_manifest.json", "_stage.json", "part-00000.parquet"]
    assert storage.exists(storage.join(target, "04-select", "_stage.json"))
    log = capsys.readouterr().err.splitlines()
    assert log[0].startswith("[01-pii] made with other settings, removed to be recomputed: ") and len(log) == 4
    if root != "local":
        storage.rm(out)


def test_configured_dirs_come_from_config_yaml(tmp_path):
    assert configured_dirs(str(tmp_path)) is None
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"stages": [{"extract": {}}, "language", {"pii": None}]}))
    assert configured_dirs(str(tmp_path)) == ["00-read", "01-extract", "02-language", "03-pii"]
    for name in ("00-read", "01-extract", "02-gopher_quality"):
        write_json({"stage": name[3:], "parts": []}, str(tmp_path / name / "_manifest.json"))
    assert [s.dir_name for s in run_stages(str(tmp_path))] == ["00-read", "01-extract"]
    (tmp_path / "config.yaml").unlink()  # no config (an older output): every stage folder, as before
    assert [s.dir_name for s in run_stages(str(tmp_path))] == ["00-read", "01-extract", "02-gopher_quality"]


@pytest.mark.slow
def test_a_rerun_with_another_config_recomputes_the_changed_stages_and_says_why(tmp_path):
    out = tmp_path / "out"

    def config(name: str, min_chars: int, max_chars: int) -> str:
        return write_config(tmp_path / f"{name}.yaml", out, [{"min_chars": {"min_chars": min_chars}}, {"pii": {}},
                                                             {"max_chars": {"max_chars": max_chars}}])

    def rerun(path: str) -> list[str]:
        proc = cli("run", path, "--workers", "1", "--no-progress")
        assert proc.returncode == 0, proc.stderr
        return proc.stderr.splitlines()

    def manifests() -> dict[str, int]:
        return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/_manifest.json")}

    rerun(config("a", 20, 300))
    before = manifests()
    log = rerun(config("b", 20, 40))  # only the last stage's params
    assert [line for line in log if "made with other settings" in line] == [
        "[03-max_chars] made with other settings, removed to be recomputed: params changed (max_chars: 300 -> 40)"]
    assert "[01-min_chars] done already, skipped" in log and "[02-pii] done already, skipped" in log
    after = manifests()
    assert {k for k in before if before[k] != after[k]} == {"03-max_chars"}

    log = rerun(config("c", 10, 40))  # the first stage's: everything after it follows
    assert [line.split(": ", 1)[1] for line in log if "made with other settings" in line] == [
        "params changed (min_chars: 20 -> 10)", "an earlier stage changed (01-min_chars)",
        "an earlier stage changed (01-min_chars)"]
    assert {k for k in after if after[k] != manifests()[k]} == {"01-min_chars", "02-pii", "03-max_chars"}
    assert "[00-read] done already, skipped" in log
    out = tmp_path / "fresh"  # the same config into an empty folder: the same bytes
    rerun(config("c", 10, 40))
    digests = [{str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}
               for root in (tmp_path / "out", tmp_path / "fresh")]
    assert digests[0] == digests[1] and len(digests[0]) > 2


def test_change_reason_names_the_params_or_the_earlier_stage(tmp_path):
    out = str(tmp_path)
    write_json({"fingerprint": "f", "input": "i1"}, storage.join(out, "02-min_chars", "_stage.json"))
    write_json({"fingerprint": "f", "params": {"min_chars": 20, "keep": ["en"]}},
               storage.join(out, "02-min_chars", "_manifest.json"))
    planned = {"params": {"min_chars": 10, "keep": ["en"]}, "input": "i1"}
    assert change_reason(out, "02-min_chars", ["02-min_chars"], planned) == "params changed (min_chars: 20 -> 10)"
    assert change_reason(out, "02-min_chars", ["00-read", "02-min_chars", "01-pii"], planned) == (
        "params changed (min_chars: 20 -> 10); an earlier stage changed (00-read)")
    same = {**planned, "params": {"min_chars": 20, "keep": ["en"]}}
    assert change_reason(out, "02-min_chars", ["02-min_chars"], {**same, "input": "i2"}) == (
        "its input changed (an earlier stage was recomputed since)")
    assert change_reason(out, "02-min_chars", ["02-min_chars"], same) == (
        "its scope, the seed, the thresher version or an earlier stage changed")
    assert change_reason(out, "00-read", ["00-read"], None) == "its inputs or read settings changed"
