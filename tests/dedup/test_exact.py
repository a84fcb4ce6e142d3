"""exact_dedup: global across parts and sources, configurable normalisation, one deterministic
representative, part names and row order preserved, rejected rows with reason and audit."""

from __future__ import annotations

import pyarrow.parquet as pq

from dedup.exact import ExactDedup
from pipeline.record import Document
from tests.dedup.conftest import manifest, rows, run, run_global, stage_dir, write_jsonl


def doc(i: str, text: str, source: str = "web", quality: float | None = None, domain: str | None = None):
    return Document(id=i, text=text, source=source, domain=domain, quality_score=quality)


def test_duplicates_across_parts_and_sources_keep_the_best(client, tmp_path):
    parts = [
        [doc("a1", "Fed raises rates"), doc("a2", "Unique story one"), doc("a3", "fed   RAISES rates", quality=0.9)],
        [doc("b1", "FED RAISES RATES", "news", 0.2, "financial"), doc("b2", "Unique story two", "news")],
    ]
    extra, stats, out = run_global(ExactDedup(), parts, tmp_path, client)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    kept = [[r["id"] for r in pq.read_table(p).to_pylist()] for p in sorted(out.glob("part-*.parquet"))]
    assert kept == [["a2", "a3"], ["b2"]]  # a3 has the highest quality_score; row order kept
    rejected = rows(out, "rejected")
    assert {(r["id"], r["reason"], r["metadata"]["duplicate_of"]) for r in rejected} == {
        ("a1", "exact_dedup.duplicate", "a3"), ("b1", "exact_dedup.duplicate", "a3")}
    assert stats.docs_in == 5 and stats.docs_out == 3 and stats.rejected == {"exact_dedup.duplicate": 2}
    audit = extra["audit"]
    assert audit["group_size_histogram"] == {"3": 1} and audit["documents_removed"] == 2
    assert audit["removed_by_source"] == {"news": 1, "web": 1}
    assert audit["removed_by_domain"] == {"(none)": 1, "financial": 1}
    assert not (out / "_work").exists()


def test_normalisation_is_configurable(client, tmp_path):
    parts = [[doc("a", "Profit rose 5 pct."), doc("b", "profit rose 7 pct"), doc("c", "Profit rose 5 pct.")]]
    strict = ExactDedup(ExactDedup.Params(normalization={"lowercase": False}))
    _, stats, _ = run_global(strict, parts, tmp_path / "strict", client)
    assert stats.docs_out == 2  # only the identical pair
    loose = ExactDedup(ExactDedup.Params(normalization={"strip_punctuation": True, "digits_to_zero": True}))
    _, stats, out = run_global(loose, parts, tmp_path / "loose", client)
    assert stats.docs_out == 1
    assert {r["metadata"]["duplicate_of"] for r in rows(out, "rejected")} == {"a"}  # equal length: smaller id


def test_resume_after_partial_apply_gives_the_same_bytes(client, tmp_path):
    parts = [[doc(f"p{p}d{i}", f"text {i % 4}") for i in range(6)] for p in range(3)]
    _, _, out = run_global(ExactDedup(), parts, tmp_path / "a", client)
    first = {p.name: p.read_bytes() for p in out.rglob("*.parquet")}
    # A killed run: decisions made, one part applied, the others not.
    (out / "_stats" / "part-00001.parquet.json").unlink()
    (out / "part-00001.parquet").unlink()
    ExactDedup().run(_context(client, out, tmp_path / "a" / "input"))
    assert {p.name: p.read_bytes() for p in out.rglob("*.parquet")} == first


def _context(client, out, input_dir):
    from pipeline.context import GlobalContext, StageOutput
    from pipeline.record import DOCUMENT_SCHEMA

    names = tuple(sorted(p.name for p in input_dir.glob("part-*.parquet")))
    return GlobalContext(client, StageOutput(input_dir, "test", names, DOCUMENT_SCHEMA), out, 0, progress=False)


def test_runner_dedups_two_jsonl_sources(client, tmp_path):
    a = write_jsonl(tmp_path / "web.jsonl", [{"text": "Same text here"}, {"text": "web only"}])
    b = write_jsonl(tmp_path / "news.jsonl", [{"text": "same  text here"}, {"text": "news only"}])
    summary = run(client, tmp_path / "out", [a, b], [{"exact_dedup": {}}])
    stage = stage_dir(tmp_path / "out", "exact_dedup")
    assert summary["stages"][1]["rejected"] == {"exact_dedup.duplicate": 1}
    assert [r["id"] for r in rows(stage)] == ["web/web.jsonl:2", "news/news.jsonl:1", "news/news.jsonl:2"]
    assert manifest(stage)["audit"]["removed_by_source"] == {"web": 1}
