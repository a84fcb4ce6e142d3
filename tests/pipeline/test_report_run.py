"""The report of a real run: a pipeline over ../shared/data with every kind of stage that
exists (language, Gopher, exact + MinHash dedup, fastText classify, select, mix, tokenize),
then `write_report`. Its numbers must equal the stage manifests', and the page must render in
headless Chromium with every section and plot, no network request and no JavaScript error.
A second, small run has the problem cases the report must flag (a source that curation removes
entirely, a quality classifier that scores every document ~0.5): its page must open with them."""

import io
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.cluster import open_client
from pipeline.config import load_config
from pipeline.io import read_json
from pipeline.report import write_report
from pipeline.report.html import SECTIONS
from pipeline.runner import Runner
from tests.conftest import REPO, shared_path
from tests.pipeline.report_browser import Chromium

pytestmark = pytest.mark.slow
THRESHER = [sys.executable, "-m", "pipeline.cli"]
FASTTEXT = {"dim": 16, "epoch": 5, "bucket": 600000}
# Plots the full run must have (data-plot of each inline SVG).
PLOTS = {"funnel", "removals", "mixture", "domains", "sources", "languages", "lengths", "scores", "shards", "timings"}


def train_classifiers(out: Path, bbc: Path, web: str) -> None:
    """A quality (bbc vs raw web) and a domain (bbc financial vs general) model, trained by
    the CLI in two processes at once (fastText has hit NaN training a second model in one)."""
    quality = {"positive_label": "hq", "fasttext": FASTTEXT, "sources": [
        {"path": str(bbc), "format": "jsonl", "label": "hq"}, {"path": web, "format": "jsonl", "label": "lq"}]}
    domain = {"positive_label": "financial", "fasttext": FASTTEXT, "sources": [
        {"path": str(bbc), "format": "jsonl", "label": label, "where": {"label": label}}
        for label in ("financial", "general")]}
    procs = []
    for name, config in (("quality", quality), ("domain", domain)):
        (out / f"{name}.yaml").write_text(yaml.safe_dump(config))
        procs.append(subprocess.Popen(THRESHER + ["classifier", "train", str(out / f"{name}.yaml"), "--output",
                                                  str(out / name)], stdout=subprocess.DEVNULL, cwd=REPO))
    assert [p.wait(timeout=600) for p in procs] == [0, 0]


def run_config(out: Path, bbc: Path, web: str, plagiarism: Path) -> dict:
    return {"output": str(out / "run"), "seed": 0,
            "inputs": [{"path": str(bbc), "format": "jsonl", "source": "bbc"},
                       {"path": web, "format": "jsonl", "source": "web"},
                       {"path": str(plagiarism), "format": "jsonl", "source": "plagiarism"}],
            "read": {"max_docs_per_part": 200},
            "guards": {"max_loss_fraction": None},  # the multilingual web sample keeps 3 of its 488 documents
            "stages": [{"language": {"keep": ["en"], "min_score": 0.5}}, {"gopher_quality": {}}, {"exact_dedup": {}},
                       {"minhash_signatures": {}}, {"lsh_buckets": {}}, {"duplicate_clusters": {}},
                       {"remove_duplicates": {}},
                       {"classify": {"quality_model": str(out / "quality/model.bin"),
                                     "domain_model": str(out / "domain/model.bin")}},
                       {"select": {"keep_top": 0.8}},
                       {"mix": {"targets": {"financial": 0.5, "general": 0.5}, "max_epochs": 3}},
                       {"tokenize": {"train": {"vocab_size": 800, "max_sample_bytes": 2_000_000},
                                     "valid_fraction": 0.02}}]}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    bbc = shared_path("fin_vs_general_bbc", "documents.jsonl")
    web = str(shared_path("web_text_cc2019_sample") / "*.jsonl.gz")
    plagiarism = shared_path("dedup_plagiarism_short_answers", "documents.jsonl")
    out = tmp_path_factory.mktemp("report")
    train_classifiers(out, bbc, web)
    (out / "config.yaml").write_text(yaml.safe_dump(run_config(out, bbc, web, plagiarism)))
    run = out / "run"
    with open_client(workers=2) as client:
        Runner(load_config(out / "config.yaml"), client, progress=False).run()
        html = write_report(run, client=client)
        shards = write_report(run / "11-tokenize", out / "shards-report", client=client)
        documents = write_report(run / "10-mix", out / "docs-report", client=client)
        # The same input twice: a small JSONL file, to check the outputs are byte-identical.
        again = [write_report(plagiarism, out / f"again-{i}", client=client) for i in range(2)]
    return {"run": run, "html": html, "stats": read_json(html.parent / "stats.json"), "shards": shards,
            "documents": documents, "again": again, "tmp": out}


def manifests(run: Path) -> dict[str, dict]:
    return {d.name: read_json(d / "_manifest.json") for d in sorted(run.iterdir()) if (d / "_manifest.json").exists()}


def html_rows(html: str, table_id: str) -> dict[str, dict[str, str]]:
    """data-value of each data-key cell, per row (keyed by data-dir / data-step), of a table."""
    body = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)
    rows = {}
    for attrs, cells in re.findall(r"<tr ([^>]*)>(.*?)</tr>", body, re.S):
        key = " ".join(re.findall(r'data-(?:dir|step|domain)="([^"]*)"', attrs))
        rows[key] = dict(re.findall(r'data-key="([^"]+)" data-value="([^"]*)"', cells))
    return rows


def test_report_numbers_equal_the_manifests(report):
    stats, run = report["stats"], report["run"]
    by_dir = manifests(run)
    rows = {r["dir"]: r for r in stats["funnel"]["rows"] if r["step"] not in ("raw records", "training shards")}
    assert list(rows) == list(by_dir)
    raw = stats["funnel"]["rows"][0]
    read = by_dir["00-read"]["stats"]
    assert (raw["documents"], raw["bytes"]) == (read["docs_in"], read["bytes_in"])
    for name, m in by_dir.items():
        assert (rows[name]["documents"], rows[name]["bytes"]) == (m["stats"]["docs_out"], m["stats"]["bytes_out"]), name
        if name in stats["document_sets"]:  # measured on Dask: the same documents and bytes
            measured = stats["document_sets"][name]
            assert (measured["documents"], measured["bytes"]) == (m["stats"]["docs_out"], m["stats"]["bytes_out"]), name
    removals = {r["dir"]: {x["reason"]: x["documents"] for x in r["reasons"]} for r in stats["removals"]}
    assert removals == {n: m["stats"]["rejected"] for n, m in by_dir.items() if m["stats"]["docs_rejected"]}
    assert stats["selection"]["threshold"] == by_dir["09-select"]["selection"]["threshold"]
    mixture = {k: v for k, v in stats["mixture"].items() if k != "dir"}
    assert mixture == by_dir["10-mix"]["mixture"]
    shard_manifest = read_json(run / "11-tokenize" / "manifest.json")
    assert stats["shards"]["tokens"] == sum(d["tokens"] for d in shard_manifest["domains"].values())
    assert stats["shards"]["tokenizer"]["sha256"] == shard_manifest["tokenizer"]["sha256"]
    assert {d["dir"]: d["audit"] for d in stats["dedup"]} == {n: m.get("audit") for n, m in by_dir.items()
                                                             if n in {d["dir"] for d in stats["dedup"]}}
    assert stats["plan"]["flops"] == pytest.approx(6 * stats["shards"]["tokens"] ** 2 / 20)
    # The HTML shows the same numbers.
    html = report["html"].read_text()
    table = html_rows(html, "funnel-table")
    for name, m in by_dir.items():
        row = table[f"{name} {m['stage']}"]
        assert (int(row["documents"]), int(row["bytes"]), int(row["removed"])) == \
            (m["stats"]["docs_out"], m["stats"]["bytes_out"], m["stats"]["docs_rejected"])
    shards = html_rows(html, "shards-domains")
    assert {d: int(v["tokens"]) for d, v in shards.items()} == \
        {d: e["tokens"] for d, e in shard_manifest["domains"].items()}
    for name, reasons in removals.items():
        for reason, n in reasons.items():
            assert re.search(rf'<tr data-reason="{re.escape(reason)}"><td>[^<]*</td><td class="num" '
                             rf'data-key="documents" data-value="{n}">', html), (name, reason)


def test_report_renders_in_chromium(report, tmp_path):
    probe = """(() => ({
      sections: [...document.querySelectorAll('section[data-section]')].map(s => s.id),
      plots: [...document.querySelectorAll('svg[data-plot]')].map(s => [s.dataset.plot, s.getBoundingClientRect().width,
                                                                       s.getBoundingClientRect().height]),
      absent: [...document.querySelectorAll('.absent')].map(p => p.textContent),
    }))()"""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://example.invalid/x.png"><script>notDefined()</script></body></html>')
    with Chromium(tmp_path) as browser:
        page = browser.open(report["html"], probe)
        broken = browser.open(bad, "1")
    assert page.requests == [report["html"].resolve().as_uri()]
    assert page.errors == []
    assert page.value["sections"] == list(SECTIONS)
    plots = {name for name, width, height in page.value["plots"] if width > 100 and height > 50}
    # exact_dedup is dedup entry 0; 06/07 share an audit, shown once at 07 (entry 4) with its S-curve
    assert PLOTS <= plots and {"dedup-0", "dedup-4", "lsh-4"} <= plots, plots
    assert page.value["absent"] == []  # every stage ran: no section says it is missing
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", page.screenshot[16:24])
    assert width >= 800 and height > 5000
    (tmp_path / "report.png").write_bytes(page.screenshot)
    # The same checks catch a page that fetches something or throws.
    assert "http://example.invalid/x.png" in broken.requests
    assert any("notDefined" in e for e in broken.errors)


def test_reports_on_shards_and_documents(report):
    run = report["run"]
    shards = read_json(report["shards"].parent / "stats.json")
    manifest = read_json(run / "11-tokenize" / "manifest.json")
    assert shards["input"]["kind"] == "shards" and shards["funnel"]["rows"][0]["tokens"] == \
        sum(d["tokens"] for d in manifest["domains"].values())
    lengths = shards["shards"]["sequence_lengths"]
    assert sum(lengths["histogram"]["count"]) == shards["shards"]["documents"]
    assert lengths["sum"] == shards["shards"]["tokens"]
    docs = read_json(report["documents"].parent / "stats.json")
    mix = read_json(run / "10-mix" / "_manifest.json")
    assert docs["input"]["kind"] == "documents"
    assert docs["overview"]["documents_final"] == mix["stats"]["docs_out"]
    assert docs["document_sets"]["10-mix"]["bytes"] == mix["stats"]["bytes_out"]
    for name in ("stats.json", "report.html", "DATASET_CARD.md"):  # same input: the same bytes
        first, second = (p.parent / name for p in report["again"])
        assert first.read_bytes() == second.read_bytes(), name
    card = (report["html"].parent / "DATASET_CARD.md").read_text()
    assert card.startswith("---\npretty_name:") and "## Processing steps" in card and "`tokenize` (global)" in card


def test_cli_stats_and_errors(report, tmp_path):
    plagiarism = shared_path("dedup_plagiarism_short_answers", "documents.jsonl")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(THRESHER + ["stats", str(plagiarism), "--output", str(tmp_path / "out"), "--workers", "1"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"report:  {tmp_path / 'out' / 'report.html'}" in done.stdout
    stats = read_json(tmp_path / "out" / "stats.json")
    assert stats["overview"]["documents_final"] == sum(1 for line in plagiarism.open() if line.strip())
    missing = subprocess.run(THRESHER + ["stats", str(tmp_path / "nope")], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    schema = json.loads(subprocess.run(THRESHER + ["stats", "--print-schema"], capture_output=True, text=True,
                                       cwd=REPO, check=True).stdout)
    assert schema["properties"]["schema_version"]["const"] == 1 and "funnel" in schema["required"]


# -- the problem cases: a source removed entirely, an uninformative classifier -------------------

SPAM = [f"cheap pills {i} click now" for i in range(30)]  # too short for Gopher's quality rules


def train_flat_classifier(out: Path, texts: Path) -> Path:
    """A quality model that cannot tell its labels apart: the same documents under both and a
    vanishing learning rate, so every document scores ~0.5."""
    config = {"positive_label": "hq", "threshold_metric": "none",
              "fasttext": {"dim": 8, "epoch": 1, "lr": 1e-6, "bucket": 100000},
              "sources": [{"path": str(texts), "format": "jsonl", "label": label, "max_docs": 200}
                          for label in ("hq", "lq")]}
    (out / "flat.yaml").write_text(yaml.safe_dump(config))
    subprocess.run(THRESHER + ["classifier", "train", str(out / "flat.yaml"), "--output", str(out / "flat")],
                   check=True, stdout=subprocess.DEVNULL, cwd=REPO, timeout=600)
    return out / "flat" / "model.bin"


@pytest.fixture(scope="module")
def problem_report(tmp_path_factory, client):
    bbc = shared_path("fin_vs_general_bbc", "documents.jsonl")
    out = tmp_path_factory.mktemp("problems")
    (out / "spam.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in SPAM))
    model = train_flat_classifier(out, bbc)
    config = {"output": str(out / "run"), "seed": 0, "read": {"max_docs_per_part": 250},
              "guards": {"max_loss_fraction": None},  # the spam source is lost on purpose, for the report to flag
              "inputs": [{"path": str(bbc), "format": "jsonl", "source": "news", "domain": "financial"},
                         {"path": str(out / "spam.jsonl"), "format": "jsonl", "source": "spam", "domain": "general"}],
              "stages": [{"language": {"keep": ["en"], "min_score": 0.5}}, {"gopher_quality": {}},
                         {"classify": {"quality_model": str(model)}}, {"select": {"keep_top": 0.9}}]}
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    Runner(load_config(out / "config.yaml"), client, progress=False).run()
    return write_report(out / "run", client=client)


def test_report_flags_problems_in_chromium(problem_report, tmp_path):
    probe = """(() => ({
      first: document.querySelector('main section').id,
      alert: document.querySelector('#warnings').className,
      warnings: [...document.querySelectorAll('#warnings .warn')].map(w => w.textContent),
      spam: Object.fromEntries([...document.querySelectorAll('#label-removals tr[data-source="spam"] td[data-key]')]
                               .map(td => [td.dataset.key, td.dataset.value])),
      box: (r => [r.x, r.y, r.width, r.height])(document.querySelector('#warnings').getBoundingClientRect()),
    }))()"""
    with Chromium(tmp_path) as browser:
        page = browser.open(problem_report, probe)
    (tmp_path / "problems.png").write_bytes(page.screenshot)
    assert page.errors == [] and page.requests == [problem_report.resolve().as_uri()]
    value = page.value
    assert value["first"] == "warnings" and value["alert"] == "alert"  # the page opens with them
    spam, flat = value["warnings"][0], value["warnings"][2]
    assert spam.startswith(f"source spam: 100% of its {len(SPAM)} documents removed by curation (0 kept); "
                           "top reasons: "), spam
    assert value["warnings"][1].startswith("domain general: 100%")
    assert flat.startswith("quality_score carries no information: 100% of ") and "around chance" in flat, flat
    assert "(03-classify)" in flat and "the cut of 04-select on it" in flat
    assert value["spam"] == {"in": str(len(SPAM)), "kept": "0", "removed": str(len(SPAM)), "pct_removed": "100.0"}
    # The screenshot shows the block: a full page, and the block's red border where the DOM puts it.
    image = Image.open(io.BytesIO(page.screenshot)).convert("RGB")
    assert image.width >= 800 and image.height > 2000 and len(image.getcolors(1 << 20)) > 100
    x, y, width, height = (round(v) for v in value["box"])
    block = image.crop((x, y, x + width, y + height))
    red = sum(n for n, rgb in block.getcolors(1 << 20) if rgb == (0xC0, 0x39, 0x2B))
    assert red > 2 * (width + height), red  # a 2px border all round
