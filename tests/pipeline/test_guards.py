"""Run-level guards: a run that loses a source, reads nothing from an input, leaves a mix domain
empty or quarantines a file exits 3 with one line naming it and the reason; `--no-guards` and
the `guards:` section let it through. The checks themselves are pure functions of manifests."""

import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import ConfigError, parse_config
from pipeline.guards import GuardOptions, Guards, empty_inputs, mix_shares, quarantined_files, source_losses

THRESHER = [sys.executable, "-m", "pipeline.cli"]
FIN = [f"The bank raised its dividend by {i} percent after quarterly earnings beat forecasts." for i in range(6)]
WEB = [f"A walk along the river at dusk, day {i}, with friends and a dog called Max." for i in range(6)]


def write_jsonl(path, texts, field="text"):
    path.write_text("".join(json.dumps({field: t, "url": f"http://x/{i}"}) + "\n" for i, t in enumerate(texts)))
    return path


def run(tmp_path, inputs, stages=(), guards=None, *flags):
    config = {"output": str(tmp_path / "out"), "inputs": inputs, "stages": list(stages)}
    if guards is not None:
        config["guards"] = guards
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run(THRESHER + ["run", str(tmp_path / "run.yaml"), "--workers", "1", "--no-progress", *flags],
                          capture_output=True, text=True, timeout=300)


def guard_line(proc) -> str:
    """The one line a failed guard prints (the run's progress lines start with `[`)."""
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("thresher: error: guard: "), proc.stderr
    return lines[0]


def test_a_source_that_loses_every_document_fails_naming_it_and_why(tmp_path):
    fin, web = write_jsonl(tmp_path / "fin.jsonl", FIN), write_jsonl(tmp_path / "web.jsonl", WEB)
    inputs = [{"path": str(fin), "format": "jsonl", "source": "fin", "domain": "financial"},
              {"path": str(web), "format": "jsonl", "source": "web", "domain": "general"}]
    stages = [{"min_chars": {"min_chars": 1000, "only": {"source": ["web"]}}}, "exact_dedup"]
    proc = run(tmp_path, inputs, stages)
    line = guard_line(proc)
    assert "source web (domain general) lost 100.0% of its 6 documents (min_chars.too_few_chars 6)" in line
    assert "source fin" not in line
    assert "[02-exact_dedup]" not in proc.stderr  # stopped right after the stage that lost it
    again = run(tmp_path, inputs, stages, None, "--no-guards")
    assert again.returncode == 0 and "[01-min_chars] done already, skipped" in again.stderr  # kept: it resumes


def test_an_empty_mix_domain_fails_naming_the_domain_and_the_dropped_documents(tmp_path):
    # The user's run: web documents without a domain, a 50/50 target, 100% financial and exit 0.
    fin, web = write_jsonl(tmp_path / "fin.jsonl", FIN), write_jsonl(tmp_path / "web.jsonl", WEB)
    inputs = [{"path": str(fin), "format": "jsonl", "source": "fin", "domain": "financial"},
              {"path": str(web), "format": "jsonl", "source": "web"}]
    proc = run(tmp_path, inputs, [{"mix": {"targets": {"financial": 0.5, "general": 0.5}}}],
               {"max_loss_fraction": None})
    line = guard_line(proc)
    assert "mix: target domain general (50.0% of tokens) has no documents" in line
    assert "source web: mix.missing_domain 6" in line
    assert "6 document(s) have no domain and were dropped (mix.missing_domain)" in proc.stderr  # the warning
    assert "output:  " in proc.stdout and "source web" in proc.stdout  # every stage ran: the receipt too


def test_an_input_whose_documents_are_all_rejected_fails_naming_the_input_and_the_key(tmp_path):
    fin, web = write_jsonl(tmp_path / "fin.jsonl", FIN), write_jsonl(tmp_path / "web.jsonl", WEB)
    inputs = [{"path": str(fin), "format": "jsonl", "source": "fin"},
              {"path": str(web), "format": "jsonl", "source": "web", "text_field": "body"}]
    line = guard_line(run(tmp_path, inputs, ["max_chars"]))
    assert f"inputs[1] ({web}, source web): all 6 documents rejected by the reader (read.missing_text_field 6)" in line
    assert "check inputs[1].text_field" in line and "source web lost" not in line  # said once


@pytest.mark.parametrize("fmt, name", [("warc", "fin.jsonl.gz"), ("parquet", "fin.jsonl")])
def test_a_file_of_the_wrong_format_is_quarantined_and_its_input_fails(tmp_path, fmt, name):
    path = tmp_path / name
    data = "".join(json.dumps({"text": t}) + "\n" for t in FIN).encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    line = guard_line(run(tmp_path, [{"path": str(path), "format": fmt, "source": "fin"}]))
    assert f"inputs[0] ({path}, source fin): no documents read: read.wrong_format 1 file(s)" in line
    assert "check inputs[0].format" in line
    read = json.loads((tmp_path / "out" / "00-read" / "_manifest.json").read_text())
    assert read["stats"]["quarantine"][0]["detail"] == (
        f"{name} looks like JSON lines, not {fmt}; check the input's format (or its path)")


def test_quarantined_files_over_the_limit_fail_at_the_end(tmp_path):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "a.jsonl", FIN)
    pq.write_table(pa.table({"text": WEB}), tmp_path / "data" / "b.jsonl")  # a Parquet file among JSON lines
    inputs = [{"path": f"{tmp_path}/data/*.jsonl", "format": "jsonl", "source": "fin"}]
    proc = run(tmp_path, inputs, ["max_chars"])
    line = guard_line(proc)
    assert "1 input file(s) quarantined (read.wrong_format 1: b.jsonl); guards.max_quarantined_files is 0" in line
    assert "[01-max_chars] 6 in -> 6 kept" in proc.stderr  # a damaged file does not stop the run
    assert run(tmp_path, inputs, ["max_chars"], {"max_quarantined_files": 1}).returncode == 0


def test_no_guards_lets_a_lossy_run_exit_0(tmp_path):
    web = write_jsonl(tmp_path / "web.jsonl", WEB)
    proc = run(tmp_path, [{"path": str(web), "format": "jsonl", "source": "web", "text_field": "body"}], (), None,
               "--no-guards")
    assert proc.returncode == 0, proc.stderr
    assert "source web" in proc.stdout and "read.missing_text_field 6" in proc.stdout  # still printed


# -- the checks on manifests, without a run ----------------------------------------------------

def read_manifest(inputs, quarantine=()):
    return {"stage": "read", "stats": {"quarantine": list(quarantine), "rejected_by_source": {}}, "inputs": inputs}


def entry(index, source, docs_in, docs_out, rejected=None, quarantined=None, domain=None):
    return {"index": index, "path": f"{source}.jsonl", "source": source, "domain": domain, "files": 1,
            "docs_in": docs_in, "docs_out": docs_out, "rejected": rejected or {}, "skipped": {},
            "quarantined_files": quarantined or {}}


def test_losses_count_rejections_but_not_sampling():
    read = read_manifest([entry(0, "web", 100, 100), entry(1, "fin", 10, 10)])
    mix = {"stage": "mix", "stats": {"rejected_by_source": {"web": {"mix.not_sampled": 90, "mix.empty_text": 1}}}}
    stage = {"stage": "c4_quality", "stats": {"rejected_by_source": {"web": {"c4_quality.too_few_sentences": 9}}}}
    losses = source_losses([read, stage, mix])
    assert losses["web"]["documents_lost"] == 10 and losses["web"]["loss"] == 0.1
    assert losses["web"]["reasons"] == {"c4_quality.too_few_sentences": 9, "mix.empty_text": 1}
    assert losses["fin"]["documents_lost"] == 0
    assert Guards(GuardOptions(max_loss_fraction=0.1)).problems([read, stage, mix])[0].startswith(
        "source web lost 10.0% of its 100 documents (c4_quality.too_few_sentences 9, mix.empty_text 1)")
    assert Guards(GuardOptions()).problems([read, stage, mix]) == []


def test_empty_inputs_say_why_and_which_key():
    manifest = read_manifest([entry(0, "a", 0, 0, quarantined={"read.empty_file": ["a.jsonl"]}),
                              entry(1, "b", 3, 0, rejected={"read.invalid_json": 3}), entry(2, "c", 0, 0)])
    assert [p for _, p in empty_inputs(manifest)] == [
        "inputs[0] (a.jsonl, source a): no documents read: read.empty_file 1 file(s)",
        "inputs[1] (b.jsonl, source b): all 3 documents rejected by the reader (read.invalid_json 3); "
        "check inputs[1].format",
        "inputs[2] (c.jsonl, source c): no documents read (its files hold no records)"]
    assert Guards(GuardOptions(allow_empty_inputs=True)).problems([manifest]) == []


def test_mix_shares_off_target_fail_beyond_the_tolerance():
    def domain(target, achieved, tokens=10):
        return {"target": target, "achieved": achieved, "available_tokens": tokens}

    mix = {"stage": "mix", "stats": {}, "mixture": {"domains": {"financial": domain(0.51, 0.71),
                                                                "general": domain(0.49, 0.29)}}}
    assert mix_shares(mix, 0.02)[0] == ("mix: domain financial got 71.0% of the tokens, target 51.0%; "
                                        "guards.mix_share_tolerance is 0.02")
    assert mix_shares(mix, 0.25) == []
    read = read_manifest([entry(0, "fin", 1, 1)])
    assert Guards(GuardOptions(mix_share_tolerance=None)).problems([read, mix]) == []


def test_quarantine_counts_files_not_problems():
    manifest = read_manifest([], [{"file": "a.warc.gz", "reason": "read.corrupt_record", "detail": "x"},
                                  {"file": "a.warc.gz", "reason": "read.truncated_file", "detail": "y"}])
    assert quarantined_files(manifest, 1) == []
    assert quarantined_files(manifest, 0)[0].startswith("1 input file(s) quarantined (")
    assert Guards(GuardOptions()).problems([manifest]) == []  # counted once the run is done
    assert Guards(GuardOptions()).problems([manifest], final=True) != []


def test_guards_section_is_validated_like_the_others():
    base = {"output": "o", "inputs": [{"path": "x", "format": "jsonl", "source": "s"}]}
    assert parse_config(base).guards == GuardOptions()
    with pytest.raises(ConfigError, match=r"^guards.max_loss_fraction: Input should be less than or equal to 1"):
        parse_config({**base, "guards": {"max_loss_fraction": 2}})
    with pytest.raises(ConfigError, match=r"^guards.max_quarantine: unknown key; valid keys are: max_loss_fraction"):
        parse_config({**base, "guards": {"max_quarantine": 2}})
