"""Config: typed validation with errors that name the key and list what is valid."""

import subprocess
import sys

import pytest

from pipeline.config import ConfigError, load_config, parse_config

BASE = {"output": "out/x", "inputs": [{"path": "data/*.jsonl", "format": "jsonl", "source": "web"}]}


def parse(**changes):
    return parse_config({**BASE, **changes})


def error_of(**changes) -> str:
    with pytest.raises(ConfigError) as e:
        parse(**changes)
    return str(e.value)


def test_valid_config_resolves_defaults():
    config = parse(stages=[{"language": {"keep": ["en"]}}, "extract"])
    assert [s.name for s in config.stages] == ["language", "extract"]
    assert config.stages[0].params["min_score"] == 0.0 and config.read.max_docs_per_part == 100_000
    assert "language:" in config.to_yaml() and config.build_stages()[0].params.keep == ["en"]


def test_unknown_top_level_key_lists_valid_keys():
    message = error_of(ouput="x")
    assert message.startswith("ouput: unknown key; valid keys are: output, seed, inputs, read, stages")


def test_unknown_stage_lists_known_stages():
    message = error_of(stages=[{"languag": {}}])
    assert message.startswith("stages[0]: unknown stage 'languag'; known stages are:") and "language" in message


def test_bad_stage_param_names_dotted_path():
    assert error_of(stages=[{"extract": {}}, {"language": {"min_score": 2}}]).startswith(
        "stages[1].language.min_score: Input should be less than or equal to 1")
    assert error_of(stages=[{"language": {"keep_langs": ["en"]}}]).startswith(
        "stages[0].language.keep_langs: unknown key; valid keys are: keep, min_score, max_chars")


def test_bad_input_fields():
    assert error_of(inputs=[{"path": "x", "format": "pdf", "source": "a"}]).startswith("inputs[0].format:")
    assert error_of(inputs=[{"path": "x", "format": "jsonl"}]) == "inputs[0].source: required key is missing"
    assert error_of(inputs=[{"path": "x", "format": "text", "source": "a", "separator": "("}]).startswith(
        "inputs[0].separator:")


def test_env_expansion_and_output_override(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", "/data/crawl")
    path = tmp_path / "c.yaml"
    path.write_text("output: ${OUT:-out/default}\n"
                    "inputs:\n  - {path: '${DATA_ROOT}/*.warc.gz', format: warc, source: cc}\n")
    config = load_config(path)
    assert config.output == "out/default" and config.inputs[0].path == "/data/crawl/*.warc.gz"
    assert load_config(path, output="elsewhere").output == "elsewhere"


def test_cli_reports_one_line_error_and_exit_code(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("output: o\ninputs: [{path: x, format: jsonl, source: s}]\n"
                    "stages:\n  - language: {min_score: high}\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(path), "--dry-run"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "thresher: error: stages[0].language.min_score: Input should be a valid number, "
        "unable to parse string as a number"]


def test_dry_run_prints_resolved_config(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')  # --dry-run checks that the inputs exist
    path = tmp_path / "ok.yaml"
    path.write_text(f"output: o\ninputs: [{{path: {tmp_path}/x.jsonl, format: jsonl, source: s}}]\n"
                    "stages: [language]\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(path), "--dry-run"],
                          capture_output=True, text=True, check=True)
    assert "min_score: 0.0" in proc.stdout and "max_docs_per_part: 100000" in proc.stdout


def test_cluster_section_errors_name_the_dotted_key():
    assert error_of(cluster={"jobs": 0}) == "cluster.jobs: Input should be greater than 0"
    assert error_of(cluster={"kind": "slurm", "memroy": "8GB"}).startswith(  # the typo, not the missing key
        "cluster.memroy: unknown key; valid keys are: kind, jobs, cores, processes, memory")
    assert error_of(cluster={"kind": "k8s"}).startswith("cluster.kind: Input should be 'local', 'slurm'")
    assert error_of(cluster={"kind": "slurm"}) == "cluster.memory: required for kind slurm: memory per job, e.g. 16GB"
    assert error_of(cluster={"kind": "pbs", "memory": "lots"}) == (
        "cluster.memory: 'lots' is not a size; write e.g. 16GB or 512MiB")
    assert error_of(cluster={"cores": 2, "processes": 4}) == (
        "cluster.processes: must be at most cluster.cores (2): each worker needs a core")
    assert error_of(cluster={"kind": "sge", "memory": "4GB", "job_extra_directives": "-l gpu"}).startswith(
        "cluster.job_extra_directives: Input should be a valid list")


def test_cluster_kind_override_and_defaults():
    assert parse().cluster is None and "cluster" not in parse().to_dict()
    config = parse_config({**BASE, "cluster": {"kind": "pbs", "cores": 4, "memory": "8GB"}}, cluster="slurm")
    assert (config.cluster.kind, config.cluster.cores, config.cluster.processes) == ("slurm", 4, None)
    assert config.to_dict()["cluster"]["kind"] == "slurm"
    with pytest.raises(ConfigError, match=r"^cluster\.memory: required for kind lsf"):
        parse_config(BASE, cluster="lsf")


MIX = {"mix": {"targets": {"financial": 0.5, "general": 0.5}}}


def test_a_stage_that_needs_an_artifact_must_come_after_a_stage_that_produces_it():
    required = {"tokenize": {"model": "m.model", "mixture": "required"}}
    assert error_of(stages=[required]) == (
        "stages[0].tokenize: needs the mixture artifact, which no earlier stage produces; add mix before it")
    assert error_of(stages=["min_chars", required, MIX]).startswith("stages[1].tokenize: needs the mixture")
    config = parse(stages=[MIX, "min_chars", required])  # anywhere earlier will do
    assert config.stages[2].params["mixture"] == "required"
    # the default `auto` is left out of the params, so fingerprints from before `mixture` hold
    assert "mixture" not in parse(stages=[{"tokenize": {"model": "m.model"}}]).stages[0].params


@pytest.mark.parametrize("dry_run", [True, False])
def test_cli_refuses_a_missing_artifact_before_the_run(tmp_path, dry_run):
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')
    path = tmp_path / "needs.yaml"
    path.write_text(f"output: {tmp_path}/out\ninputs: [{{path: {tmp_path}/x.jsonl, format: jsonl, source: s}}]\n"
                    "stages:\n  - min_chars\n  - tokenize: {model: m.model, mixture: required}\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(path), "--workers", "1",
                           *(["--dry-run"] if dry_run else [])], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "thresher: error: stages[1].tokenize: needs the mixture artifact, which no earlier stage produces; "
        "add mix before it"]
    assert not (tmp_path / "out").exists()
