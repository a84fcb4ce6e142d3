"""Unit tests of the report's measurements on small inline tables (no cluster): DocStats and
its sketches, the file readers, the rejected-example sampler, the manifest sections, the
HTML/card renderers' handling of missing sections."""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasketch import HyperLogLogPlusPlus

from pipeline.io import write_json, write_parquet
from pipeline.report import sections
from pipeline.report.card import render_card, size_category
from pipeline.report.collect import TokenCounter, file_stats, merge_examples, rejected_examples
from pipeline.report.docstats import LENGTH_EDGES, DocStats, hll_count, hll_registers, snippet, stable_hash
from pipeline.report.html import dedup_views
from pipeline.report.sources import DocFile, StageDir, detect, iter_batches

TEXTS = ["one two three", "  four\nfive  ", None, "", "über größe straße", "x " * 50]


def table(n_rows=None, **extra):
    texts = TEXTS if n_rows is None else [f"doc {i} " * (i % 7 + 1) for i in range(n_rows)]
    n = len(texts)
    columns = {"id": [f"d{i}" for i in range(n)], "text": texts,
               "url": ["https://News.example.com/a", "http://other.example/x", None, "ftp://n.example", "junk",
                       None][:n]
               if n_rows is None else [None] * n,
               "domain": (["financial", "general", None] * n)[:n], "source": ["s1"] * n, **extra}
    return pa.table(columns)


def stats_of(t, tokens=None, samples=0):
    s = DocStats(sample_size=samples)
    s.add(t, np.asarray(tokens if tokens is not None else [3] * t.num_rows))
    return s


def test_docstats_counts_are_exact():
    d = stats_of(table(), tokens=[3, 2, 0, 0, 5, 50]).to_dict()
    assert d["documents"] == 6 and d["documents_without_text"] == 1
    assert d["bytes"] == sum(len((t or "").encode()) for t in TEXTS)
    assert d["lengths"]["chars"]["sum"] == sum(len(t or "") for t in TEXTS)
    assert d["lengths"]["words"]["sum"] == sum(len((t or "").split()) for t in TEXTS)  # 3 + 2 + 3 + 50
    assert d["lengths"]["words"]["max"] == 50 and d["lengths"]["words"]["min"] == 0
    assert d["tokens"] == 60
    domains = d["categories"]["domain"]
    # rows cycle financial, general, None: financial = "one two three" and ""
    assert domains["financial"] == {"documents": 2, "bytes": 13, "tokens": 3}
    assert domains["general"] == {"documents": 2, "bytes": len("  four\nfive  ") + len("über größe straße".encode()),
                                  "tokens": 7}
    assert list(domains) == ["(none)", "financial", "general"]  # most documents first, then by name
    assert d["distinct_texts_estimate"] == 5  # None and "" hash alike
    assert d["documents_with_url"] == 3 and d["distinct_url_hosts_estimate"] == 3  # "junk" has no host


def test_length_histogram_bins_are_exact():
    d = stats_of(table()).to_dict()["lengths"]["words"]["histogram"]
    assert sum(d["count"]) == 6
    zero = d["lo"].index(0.0)
    assert d["count"][zero] == 2 and d["hi"][zero] == 1.0  # None and ""
    fifty = next(i for i, (lo, hi) in enumerate(zip(d["lo"], d["hi"])) if lo <= 50 < hi)
    assert d["count"][fifty] == 1
    assert LENGTH_EDGES[0] == 0 and np.all(np.diff(LENGTH_EDGES) > 0)


def test_sum_of_parts_equals_whole():
    t = table(n_rows=500)
    whole = stats_of(t, samples=2).to_dict()
    parts = sum((stats_of(t.slice(i, 100), samples=2) for i in range(0, 500, 100)), DocStats())
    split = parts.to_dict()
    for key in ("documents", "bytes", "tokens", "categories", "distinct_texts_estimate", "samples"):
        assert split[key] == whole[key], key
    for metric in ("chars", "words", "tokens"):
        for key in ("sum", "min", "max", "histogram"):
            assert split["lengths"][metric][key] == whole["lengths"][metric][key]
        median = whole["lengths"][metric]["quantiles"]["p50"]
        assert split["lengths"][metric]["quantiles"]["p50"] == pytest.approx(median, rel=0.05)


def test_scores_histogram_and_missing():
    t = table(quality_score=[0.0, 0.5, None, 1.0, float("nan"), 0.99])
    d = stats_of(t).to_dict()["scores"]
    assert set(d) == {"quality_score"}
    q = d["quality_score"]
    assert q["scored"] == 4 and q["missing"] == 2 and q["mean"] == pytest.approx((0.5 + 1.0 + 0.99) / 4)
    assert q["histogram"]["lo"] == [0.0, 0.5, 0.98] and q["histogram"]["count"] == [1, 1, 2]


def test_hll_registers_match_datasketch_update():
    hashes = stable_hash([f"text {i}" for i in range(5000)])
    reference = HyperLogLogPlusPlus(p=14, hashfunc=lambda h: int(h))
    for h in hashes.tolist():
        reference.update(h)
    assert np.array_equal(hll_registers(hashes), reference.reg)
    assert hll_count(hll_registers(hashes)) == pytest.approx(5000, rel=0.03)


def test_samples_are_smallest_id_hashes_per_domain():
    t = table(n_rows=300)
    d = stats_of(t, samples=2).to_dict()["samples"]
    ids = t.column("id").to_pylist()
    domains = t.column("domain").to_pylist()
    for domain in ("financial", "general"):
        members = [i for i, dom in zip(ids, domains) if dom == domain]
        expected = sorted(members, key=lambda i: (int(stable_hash([i])[0]), i))[:2]
        assert [s["id"] for s in d[domain]] == expected


def test_snippet_collapses_whitespace_and_cuts():
    assert snippet("a \n\n b\tc") == "a b c"
    long = snippet("word " * 200)
    assert len(long) <= 301 and long.endswith("…")


def test_token_counter_estimate_matches_mix_rule():
    counts = TokenCounter(None).count(pa.chunked_array([["abcd", "abcde", None, ""]]))
    assert counts.tolist() == [1, 2, 0, 0]


def test_jsonl_reader_counts_unreadable_records(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    lines = [json.dumps({"body": "hello world", "domain": "general", "quality_score": 0.5}), "{not json",
             json.dumps({"title": "no body"}), json.dumps({"body": "second", "language": "en", "extra": [1]})]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    batches = list(iter_batches(DocFile(str(path), "jsonl"), "body"))
    assert sum(bad for _, bad in batches) == 2
    rows = pa.concat_tables([t for t, _ in batches]).to_pylist()
    assert [r["text"] for r in rows] == ["hello world", "second"] and rows[1]["language"] == "en"
    stats = file_stats(DocFile(str(path), "jsonl"), "body", TokenCounter(None), 0)
    assert stats.documents == 2 and stats.unreadable == 2


def test_parquet_reader_renames_text_field(tmp_path):
    write_parquet(pa.table({"content": ["a b", "c"], "source": ["x", "y"]}), tmp_path / "d.parquet")
    (t, bad), = iter_batches(DocFile(str(tmp_path / "d.parquet"), "parquet"), "content")
    assert t.column_names == ["text", "source"] and bad == 0
    with pytest.raises(ValueError, match="--text-field"):
        list(iter_batches(DocFile(str(tmp_path / "d.parquet"), "parquet"), "text"))


def test_detect_kinds(tmp_path):
    (tmp_path / "docs").mkdir()
    write_parquet(pa.table({"text": ["a"]}), tmp_path / "docs" / "a.parquet")
    assert detect(tmp_path / "docs").kind == "documents"
    write_json({"schema": "thresher.stats"}, tmp_path / "docs" / "report" / "stats.json")
    (tmp_path / "docs" / "report" / "report.html").write_text("<html></html>")
    write_json({"text": "a json document"}, tmp_path / "docs" / "more" / "b.json")
    assert [Path(f.path).name for f in detect(tmp_path / "docs").files] == ["a.parquet", "b.json"]
    stage = tmp_path / "run" / "00-read"
    write_parquet(pa.table({"text": ["a"]}), stage / "part-0.parquet")
    write_parquet(pa.table({"text": ["b"]}), stage / "rejected" / "part-0.parquet")
    write_json({"stage": "read", "parts": ["part-0.parquet"], "stats": {}}, stage / "_manifest.json")
    assert detect(tmp_path / "run").kind == "run"
    assert [f.path for f in detect(stage).files] == [str(stage / "part-0.parquet")]  # not rejected/
    write_json({"format": "megatron-indexed", "domains": {}}, tmp_path / "shards" / "manifest.json")
    assert detect(tmp_path / "shards").kind == "shards"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run output"):
        detect(tmp_path / "empty")


def test_rejected_examples_keep_k_smallest_per_reason(tmp_path):
    ids = [f"r{i}" for i in range(40)]
    t = pa.table({"id": ids, "text": [f"text {i}" for i in range(40)], "url": [None] * 40,
                  "reason": ["a.x" if i % 4 else "b.y" for i in range(40)], "language": ["de"] * 40})
    write_parquet(t.slice(0, 20), tmp_path / "p0.parquet")
    write_parquet(t.slice(20), tmp_path / "p1.parquet")
    merged = merge_examples([rejected_examples(str(tmp_path / "p0.parquet")),
                             rejected_examples(str(tmp_path / "p1.parquet"))])
    for reason, members in (("a.x", [i for k, i in enumerate(ids) if k % 4]), ("b.y", ids[::4])):
        expected = sorted(members, key=lambda i: (int(stable_hash([i])[0]), i))[:3]
        assert [e[1] for e in merged[reason]] == expected
        assert merged[reason][0][4] == {"language": "de"}


def stage(tmp_path, index, name, stats, **extra):
    d = tmp_path / f"{index:02d}-{name}"
    d.mkdir(parents=True, exist_ok=True)
    return StageDir(index, d, {"stage": name, "kind": "map", "params": {}, "parts": [], "wall_seconds": 1.0,
                               "stats": stats, **extra})


def test_funnel_and_removals_copy_the_manifests(tmp_path):
    read = stage(tmp_path, 0, "read", {"docs_in": 100, "bytes_in": 1000, "docs_out": 98, "bytes_out": 990,
                                       "docs_rejected": 2, "rejected": {"read.invalid_json": 2}})
    filt = stage(tmp_path, 1, "gopher_quality", {"docs_in": 98, "docs_out": 49, "bytes_out": 500, "docs_rejected": 49,
                                                 "rejected": {"g.too_short": 40, "g.symbols": 9},
                                                 "rejected_bytes": {"g.too_short": 100, "g.symbols": 90}})
    measured = {"00-read": {"tokens": 300}, "01-gopher_quality": {"tokens": 150}}
    f = sections.funnel([read, filt], measured, False, None)
    assert [(r["step"], r["documents"], r["bytes"], r["tokens"]) for r in f["rows"]] == [
        ("raw records", 100, 1000, None), ("read", 98, 990, 300), ("gopher_quality", 49, 500, 150)]
    assert f["rows"][2]["pct_documents"] == 49.0 and f["rows"][2]["pct_tokens"] == 50.0
    assert f["rows"][2]["tokens_method"] == "estimated"
    removals = sections.removals([read, filt], {"01-gopher_quality": {"g.symbols": [(1, "id9", None, "sn", {})]}})
    reasons = removals[1]["reasons"]
    assert [(r["reason"], r["documents"], r["bytes"]) for r in reasons] == [("g.too_short", 40, 100),
                                                                           ("g.symbols", 9, 90)]
    assert reasons[1]["examples"] == [{"id": "id9", "url": None, "snippet": "sn", "details": {}}]
    assert reasons[0]["pct_of_input"] == pytest.approx(100 * 40 / 98, abs=1e-3)


def test_warnings_name_incomplete_runs_errors_and_unverified_lsh(tmp_path):
    read = stage(tmp_path, 0, "read", {"quarantine": [{"file": "a.warc.gz", "reason": "r", "detail": "d"}]})
    ext = stage(tmp_path, 1, "extract", {"rejected": {"extract.error": 3}})
    audit = {"false_positives": {"false_positive_rate": 0.2}}
    dedups = [{"dir": "02-duplicate_clusters", "audit": audit}, {"dir": "03-remove_duplicates", "audit": audit}]
    w = sections.warnings([read, ext], planned=4, mix={"warnings": ["short of tokens"]}, dedups=dedups)
    assert w[0] == "the run is incomplete: 1 of 4 configured stages finished"
    assert any("quarantined" in x for x in w) and any("raised errors" in x for x in w)
    assert "mix: short of tokens" in w
    assert [x for x in w if "LSH" in x] == [w[-1]] and w[-1].startswith("03-remove_duplicates")


def test_plan_is_chinchilla():
    plan = sections.plan_for(20_000_000_000)
    assert plan["params"] == pytest.approx(1e9) and plan["flops"] == pytest.approx(1.2e20)
    assert sections.plan_for(0) is None


def test_dedup_views_show_each_audit_and_curve_once():
    lsh = {"bands": 2, "rows": 2, "jaccard_threshold": 0.7, "s_curve": [{"jaccard": 0.0, "p_candidate": 0.0},
                                                                       {"jaccard": 1.0, "p_candidate": 1.0}]}
    audit = {"lsh": lsh, "group_size_histogram": {"2": 3}, "removed_by_source": {"a": 3}}
    entries = [{"dir": "01-minhash_signatures", "lsh": lsh, "audit": None},
               {"dir": "02-duplicate_clusters", "lsh": None, "audit": audit},
               {"dir": "03-remove_duplicates", "lsh": None, "audit": audit}]
    views = dedup_views(entries)
    assert [v["show_audit"] for v in views] == [False, False, True]
    assert [v["s_curve_svg"] is not None for v in views] == [False, False, True]
    assert 'data-plot="dedup-2"' in views[2]["cluster_svg"]


def test_card_sizes():
    assert size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K" and size_category(10**11) == "n>10B"


def test_documents_only_report_renders_absent_sections():
    from pipeline.report.html import SECTIONS, render_html

    hostile = pa.table({"id": ["<b>id</b>"], "text": ["<script>alert(1)</script> & more"], "domain": ["<i>d</i>"]})
    d = stats_of(hostile, samples=1).to_dict()
    stats = {"schema": "thresher.stats", "schema_version": 1, "thresher_version": "0",
             "input": {"path": "x", "kind": "documents"},
             "overview": {"documents_raw": 6, "documents_final": 6, "pct_documents_kept": 100.0, "bytes_raw": 1,
                          "tokens_final": 18, "tokens_final_method": "estimated", "pct_tokens_kept": 100.0,
                          "training_tokens": None, "domains": [], "languages": [], "sources": []},
             "warnings": [], "tokens_method": "estimate", "funnel": {"rows": [], "raw_bytes_are_pages": False},
             "removals": [], "roles": {"before": "x", "after": "x"}, "document_sets": {"x": d}, "mixture": None,
             "selection": None, "dedup": [], "shards": None, "plan": None, "config": None, "processing": [],
             "timings": [], "estimates": []}
    html = render_html(stats)
    for name in SECTIONS:
        assert f'data-section="{name}"' in html
    assert "No dedup stage ran." in html and "No tokenize stage ran" in html and "No mix stage ran" in html
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<i>d</i>" not in html and "&lt;i&gt;d&lt;/i&gt;" in html
    assert re.findall(r'(?:src|href)="(?!#)', html) == []  # nothing to fetch: only in-page links
    assert "# Dataset card: x" in render_card(stats)
