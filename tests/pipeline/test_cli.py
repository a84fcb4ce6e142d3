"""The command line: help everywhere, the stage list, and the demo end to end."""

import json
import os
import subprocess
import sys

import pytest

from pipeline.cli import build_parser
from tests.conftest import REPO

THRESHER = [sys.executable, "-m", "pipeline.cli"]


def test_help_for_every_command(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"run", "demo", "list"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0
        assert "usage: thresher" in capsys.readouterr().out


def test_list_shows_stages_with_parameters():
    out = subprocess.run(THRESHER + ["list"], capture_output=True, text=True, check=True).stdout
    assert "extract  [map]" in out and "    timeout_s: float (default 10.0)  per-page extraction CPU-time limit" in out
    assert "language  [map]" in out


def test_demo_to_a_url_is_an_error_naming_the_flag(tmp_path):
    done = subprocess.run(THRESHER + ["demo", "--output", "s3://bucket/demo"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert done.stderr.startswith("thresher: error: --output: 's3://bucket/demo' is a URL; the demo writes a local")
    assert list(tmp_path.iterdir()) == []  # no local `s3:` folder


@pytest.mark.slow
def test_demo_runs_and_reports(demo_run):
    out, proc = demo_run.out, demo_run.proc
    assert f"stats:   {out}/stats.json" in proc.stdout
    assert f"report:  {out}/report/report.html" in proc.stdout and (out / "report" / "DATASET_CARD.md").exists()
    stats = json.loads((out / "stats.json").read_text())
    read = stats["stages"][0]
    assert read["quarantine"][0]["reason"] == "read.truncated_file"  # the demo's cut WARC
    assert read["rejected"] == {"read.invalid_json": 1, "read.missing_text_field": 1}
    by_stage = {s["stage"]: s for s in stats["stages"]}
    assert by_stage["extract"]["rejected"]["extract.binary_content"] == 1
    assert by_stage["language"]["rejected"]["language.language_not_kept"] == 4  # de, fr, es, it pages
    assert [s["stage"] for s in stats["stages"]] == ["read", "extract", "language", "url_blocklist",
                                                     "gopher_repetition", "gopher_quality", "c4_quality",
                                                     "fineweb_quality", "pii", "exact_dedup",
                                                     "minhash_signatures", "lsh_buckets", "duplicate_clusters",
                                                     "remove_duplicates", "classify", "select", "mix", "tokenize"]
    assert by_stage["url_blocklist"]["rejected"] == {"url_blocklist.blocked_domain": 3}  # the spam site
    assert by_stage["exact_dedup"]["rejected"]["exact_dedup.duplicate"] >= 1  # the ?utm_source= copy
    assert by_stage["remove_duplicates"]["docs_rejected"] >= 4  # the syndicated stories
    manifest = json.loads((out / "17-tokenize" / "manifest.json").read_text())
    assert set(manifest["domains"]) == {"financial", "general"}
