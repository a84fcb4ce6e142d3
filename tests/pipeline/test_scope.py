"""Stage scoping: `only` / `skip` by source and domain. Documents outside a map stage's scope
pass through untouched and in place; the preset `configs/mix-51-49.yaml` runs web-page rules on
its web source only, so Reuters newswire and WikiText-2 articles survive whole."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import ConfigError, parse_config
from pipeline.record import DOCUMENT_SCHEMA, Document, documents_to_table
from pipeline.runner import Runner
from pipeline.stage import Scope, build_stage
from tests.conftest import REPO, shared_path

WRAPPED = ("The bank said on Tuesday that its\nprofit rose by a quarter in the first\n"
           "half of the year, helped by trading.")


def _docs() -> list[Document]:
    return [Document(id=f"d{i}", text=f"{WRAPPED} Item {i}.", source=source, domain=domain)
            for i, (source, domain) in enumerate([("web", "general"), ("wire", "financial"), ("web", "financial"),
                                                  ("wiki", "general"), ("web", None)])]


def test_documents_outside_the_scope_pass_through_untouched_and_in_place():
    scope = Scope.model_validate({"only": {"source": ["web"]}, "skip": {"domain": ["financial"]}})
    stage = build_stage("c4_quality", {"min_sentences": 1}, scope)
    result = stage.run_part(documents_to_table(_docs(), DOCUMENT_SCHEMA))
    # in scope: d0 and d4 (web, not financial); C4 drops their unterminated wrapped lines
    assert result.kept["id"].to_pylist() == ["d0", "d1", "d2", "d3", "d4"]
    texts = dict(zip(result.kept["id"].to_pylist(), result.kept["text"].to_pylist()))
    assert (texts["d0"], texts["d4"]) == ("half of the year, helped by trading. Item 0.",
                                          "half of the year, helped by trading. Item 4.")
    assert all(texts[i] == f"{WRAPPED} Item {i[1]}." for i in ("d1", "d2", "d3"))
    assert result.stats.docs_in == result.stats.docs_out == 5
    assert result.stats.counters["scope.passed_through"] == 3
    assert result.stats.counters["lines_removed.no_terminal_punctuation"] == 4


def test_without_a_scope_the_stage_sees_every_document():
    stage = build_stage("min_chars", {"min_chars": 10_000})
    result = stage.run_part(documents_to_table(_docs(), DOCUMENT_SCHEMA))
    assert result.kept.num_rows == 0 and result.rejected.num_rows == 5
    assert "scope.passed_through" not in result.stats.counters


@pytest.mark.parametrize(("stage", "message"), [
    ({"c4_quality": {"only": {"sources": ["web"]}}}, "stages[0].c4_quality.only.sources: unknown key"),
    ({"c4_quality": {"only": {"source": []}}}, "stages[0].c4_quality.only.source: List should have at least 1"),
    ({"exact_dedup": {"skip": {"domain": ["x"]}}}, "stages[0].exact_dedup.skip: only map stages take a scope"),
])
def test_scope_errors_name_the_key(stage, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"output": "o", "inputs": [{"path": "x", "format": "jsonl", "source": "s"}], "stages": [stage]})


def test_the_resolved_config_keeps_the_scope_and_a_new_scope_recomputes_the_stage(client, tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": f"short text {i}"}) + "\n" for i in range(4)))
    inputs = [{"path": str(tmp_path / "a.jsonl"), "format": "jsonl", "source": "web"}]

    def run(scope: dict) -> dict:
        config = parse_config({"output": str(tmp_path / "out"), "inputs": inputs,
                               "stages": [{"min_chars": {"min_chars": 100, **scope}}]})
        assert yaml.safe_load(config.to_yaml())["stages"][0]["min_chars"] == {"min_chars": 100, **scope}
        return Runner(config, client, progress=False, guards=False).run()["stages"][1]  # it drops everything

    assert run({})["docs_out"] == 0
    assert run({"skip": {"source": ["web"]}})["docs_out"] == 4
    assert run({"only": {"source": ["web"]}})["docs_out"] == 0


def test_the_51_49_preset_keeps_newswire_and_wikitext_whole(client, tmp_path):
    """The preset's map stages (web rules scoped to the web source) on ../shared/data: the
    Reuters stories and WikiText-2 articles pass untouched; the web source is filtered exactly
    as the same rules unscoped would filter it alone."""
    preset = yaml.safe_load((REPO / "configs" / "mix-51-49.yaml").read_text())
    inputs = [{**spec, "path": spec["path"].replace("../shared/data", str(shared_path()))} for spec in preset["inputs"]]
    maps = [s for s in preset["stages"] if next(iter(s)) not in ("mix", "tokenize")]
    assert {next(iter(s)) for s in maps} >= {"gopher_quality", "c4_quality"}
    summary = Runner(parse_config({"output": str(tmp_path / "scoped"), "inputs": inputs, "stages": maps}),
                     client, progress=False).run()
    last = tmp_path / "scoped" / summary["stages"][-1]["dir"]
    first = tmp_path / "scoped" / "00-read"
    before, after = (pq.read_table(sorted(d.glob("part-*.parquet")), columns=["id", "source", "text"]).to_pandas()
                     for d in (first, last))
    for source in ("reuters", "wikitext2"):
        b, a = before[before.source == source], after[after.source == source]
        assert len(b) > 50 and len(a) == len(b), source
        assert (a.set_index("id").text == b.set_index("id").text).all(), source

    unscoped = [{name: {k: v for k, v in params.items() if k not in ("only", "skip")}}
                for s in maps for name, params in s.items()]
    web = [spec for spec in inputs if spec["source"] == "web_cc2019"]
    summary = Runner(parse_config({"output": str(tmp_path / "web"), "inputs": web, "stages": unscoped}),
                     client, progress=False).run()
    alone = pq.read_table(sorted((tmp_path / "web" / summary["stages"][-1]["dir"]).glob("part-*.parquet")),
                          columns=["id", "text"]).to_pandas()
    scoped_web = after[after.source == "web_cc2019"]
    assert 0 < len(alone) < len(before[before.source == "web_cc2019"])
    assert sorted(scoped_web.id) == sorted(alone.id)
    assert (scoped_web.set_index("id").text.sort_index() == alone.set_index("id").text.sort_index()).all()
