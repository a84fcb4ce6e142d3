"""End to end: `thresher run configs/fineweb-web.yaml` over the real WARC and HTML sets in
../shared/data, and the run's stats.json counting the drops of every rule.

The run happens once per test session (`recipe_output`); test_parity_datatrove.py and
test_web_decisions.py reuse its extracted documents (and `cc2019_output`'s) instead of
extracting them again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cluster import open_client
from pipeline.config import parse_config
from pipeline.runner import Runner
from tests.conftest import REPO, SHARED_DATA, shared_path

CONFIG = REPO / "configs" / "fineweb-web.yaml"
HEURISTICS = ("url_blocklist", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "pii")


def recipe_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUTPUT of `thresher run configs/fineweb-web.yaml --workers 2`, run once per session."""
    for parts in (("warc_real_crawls",), ("extraction_cleaneval", "html"), ("extraction_dragnet", "html"),
                  ("article_extraction_scrapinghub", "html")):
        shared_path(*parts)
    if SHARED_DATA != (REPO.parent / "shared" / "data").resolve():
        pytest.skip("configs/fineweb-web.yaml reads ../shared/data; THRESHER_SHARED_DATA points elsewhere")
    out = tmp_path_factory.getbasetemp() / "fineweb-web"
    if not (out / "stats.json").exists():
        command = [sys.executable, "-m", "pipeline.cli", "run", str(CONFIG), "--output", str(out),
                   "--workers", "2", "--no-progress"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    return out


def cc2019_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUTPUT of an `extract` run over ../shared/data/web_text_cc2019_sample (JSONL: its text
    passes through extract untouched), run once per session."""
    jsonl = shared_path("web_text_cc2019_sample")
    out = tmp_path_factory.getbasetemp() / "cc2019"
    if not (out / "01-extract" / "_manifest.json").exists():
        config = parse_config({"output": str(out), "inputs": [{"path": f"{jsonl}/*.jsonl.gz", "format": "jsonl",
                                                               "source": "cc2019"}], "stages": ["extract"]})
        with open_client(workers=1) as client:
            Runner(config, client, progress=False).run()
    return out


def extracted(directory: Path, source: str | None = None) -> list[tuple[str, str]]:
    """(id, text) of the documents in a stage's output folder, of one source or all."""
    docs = []
    for part in sorted(directory.glob("part-*.parquet")):
        table = pq.read_table(part, columns=["id", "text", "source"])
        docs += [(i, t) for i, t, s in zip(*(table[c].to_pylist() for c in ("id", "text", "source")))
                 if source is None or s == source]
    return docs


@pytest.fixture(scope="session")
def recipe(tmp_path_factory) -> Path:
    return recipe_output(tmp_path_factory)


@pytest.mark.slow
def test_recipe_stats_show_drops_per_rule(recipe):
    stats = json.loads((recipe / "stats.json").read_text())
    stages = {s["stage"]: s for s in stats["stages"]}
    assert [s["stage"] for s in stats["stages"]] == ["read", "extract", "language", *HEURISTICS]
    assert stats["summary"]["documents_read"] > 900  # 62 WARC responses + 938 HTML pages, less non-HTML
    for previous, stage in zip(stats["stages"][1:], stats["stages"][2:]):
        assert stage["docs_in"] == previous["docs_out"]  # nothing lost between stages
    for name in ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"):
        rejected = stages[name]["rejected"]
        assert rejected and all(reason.startswith(f"{name}.") and n > 0 for reason, n in rejected.items())
        assert sum(rejected.values()) == stages[name]["docs_rejected"] > 0
    assert stages["gopher_repetition"]["rejected"]["gopher_repetition.duplicate_line_fraction_too_high"] > 0
    assert stages["c4_quality"]["rejected"]["c4_quality.too_few_sentences"] > 0
    counters = stages["c4_quality"]["counters"]  # FineWeb's C4: no terminal-punctuation rule
    assert counters["lines_removed.too_few_words"] > 0 and "lines_removed.no_terminal_punctuation" not in counters
    assert stages["pii"]["counters"]["emails_replaced"] > 0 and stages["pii"]["docs_rejected"] == 0
    assert 0 < stats["summary"]["documents_out"] < stats["summary"]["documents_read"]


@pytest.mark.slow
def test_recipe_keeps_rejected_documents_and_scores(recipe):
    rejected = pq.read_table(min((recipe / "05-gopher_quality" / "rejected").glob("*.parquet")))
    assert set(rejected["stage"].to_pylist()) == {"gopher_quality"}
    assert all(r.startswith("gopher_quality.") for r in rejected["reason"].to_pylist())
    # The filters run fused (only 08-pii writes kept documents); the scores stay in the metadata.
    kept = pq.read_table(min((recipe / "08-pii").glob("part-*.parquet")))
    scores = json.loads(kept["metadata"][0].as_py())["gopher_quality"]  # write_scores: true in the recipe
    assert scores["words"] >= 50 and scores["stop_words"] >= 2
    languages = {lang for part in (recipe / "08-pii").glob("part-*.parquet")
                 for lang in pq.read_table(part, columns=["language"])["language"].to_pylist()}
    assert languages == {"en"}
