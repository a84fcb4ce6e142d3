"""`thresher ablate` end to end on a tiny config (two variants of 300 Reuters-21578 stories, one
of them filtered, a 1-layer model, 16 steps, 3 seeds): config errors name their key, the report
holds what it promises, a killed ablation reruns only the missing trainings, and the same config
and seeds give the same numbers on CPU."""

from __future__ import annotations

import copy
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError
from pipeline.io import read_json, write_json
from tests.conftest import shared_path
from tokenization.train import TokenizerOptions, train_tokenizer
from training.ablate import run_ablation
from training.ablate.config import load_ablate_config, parse_ablate_config
from training.ablate.runs import train_one, training_dir

REPO = Path(__file__).resolve().parents[2]


def write_stories(folder: Path) -> tuple[Path, Path]:
    """The first 300 Reuters stories with a body over 200 characters, and the next 100 (held out)."""
    train, held = folder / "reuters.jsonl", folder / "heldout.jsonl"
    stories = []
    with gzip.open(shared_path("financial_reuters21578", "reuters21578.jsonl.gz"), "rt") as f:
        for line in f:
            body = (json.loads(line).get("body") or "").strip()
            if len(body) > 200:
                stories.append(json.dumps({"body": body}) + "\n")
            if len(stories) == 400:
                break
    train.write_text("".join(stories[:300]))
    held.write_text("".join(stories[300:]))
    return train, held


@pytest.fixture(scope="module")
def stories(tmp_path_factory) -> tuple[Path, Path]:
    return write_stories(tmp_path_factory.mktemp("stories"))


def tiny_config(folder: Path, stories: tuple[Path, Path]) -> dict:
    train, held = stories
    source = {"path": str(train), "format": "jsonl", "text_field": "body", "source": "reuters"}
    return {
        "output": str(folder / "out"),
        "variants": {"plain": {"pipeline": {"inputs": [source]}},
                     "filtered": {"pipeline": {"inputs": [source], "stages": [{"gopher_quality": {"min_words": 80}}]}}},
        "tokenizer": {"train": {"vocab_size": 400}},
        "model": {"dim": 32, "n_layers": 1, "n_heads": 2, "ffn_hidden": 64, "max_seq_len": 64},
        "train": {"tokens": 4096, "seq_len": 32, "global_batch_size": 8, "micro_batch_size": 8, "lr": 1e-2,
                  "warmup_steps": 2, "evals": 2},
        "seeds": [0, 1, 2],
        "eval_sets": {"reuters_heldout": {"path": str(held), "format": "jsonl", "text_field": "body"},
                      "wikitext2": {"path": str(shared_path("general_wikitext2") / "*.txt.gz"), "format": "text",
                                    "separator": "^ = [^=].* = $", "max_tokens": 5000}},
    }


@pytest.fixture(scope="module")
def ablation(tmp_path_factory, stories) -> tuple[dict, dict]:
    """(config dict, ablate.json) of one uninterrupted run."""
    data = tiny_config(tmp_path_factory.mktemp("ablate"), stories)
    return data, run_ablation(parse_ablate_config(data), workers=1, progress=False)


def numbers(ablate: dict) -> dict:
    """What must not depend on how or when the ablation ran: no paths, no timings."""
    trainings = {v: {s: {k: r[k] for k in ("final", "loss", "eval_loss", "steps")} for s, r in by_seed.items()}
                 for v, by_seed in ablate["trainings"].items()}
    variants = {v: {k: x[k] for k in ("documents", "tokens", "epochs")} for v, x in ablate["variants"].items()}
    return json.loads(json.dumps({"perplexity": ablate["perplexity"], "pairs": ablate["pairs"],
                                  "trainings": trainings, "variants": variants, "eval_sets": ablate["eval_sets"]}))


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(seeds=[0, 1]), "seeds: List should have at least 3 items"),
    (lambda d: d.update(seeds=[0, 1, 1]), "seeds: seeds must be distinct"),
    (lambda d: d["variants"].pop("filtered"), "variants: Dictionary should have at least 2 items"),
    (lambda d: d["variants"]["plain"].update(shards="out/x"), "variants.plain: give exactly one of `pipeline`"),
    (lambda d: d["variants"].update(old={"shards": "out/x"}), "variants.old.shards: shards come with their tokenizer"),
    (lambda d: d["variants"]["plain"]["pipeline"].update(stages=[{"no_such": {}}]),
     "variants.plain.pipeline: stages[0]: unknown stage 'no_such'"),
    (lambda d: d["train"].pop("tokens"), "train.tokens: required key is missing"),
    (lambda d: d["train"].update(steps=10), "train.steps: set by train.tokens"),
    (lambda d: d["train"].update(lr=-1), "train.lr: Input should be greater than 0"),
    (lambda d: d["model"].update(dim=30), "model: dim must be a multiple of n_heads"),
    (lambda d: d["eval_sets"]["wikitext2"].update(format="csv"), "eval_sets.wikitext2.format:"),
    (lambda d: d["eval_sets"].update({"bad name": d["eval_sets"]["wikitext2"]}), "eval_sets: 'bad name': names"),
    (lambda d: d["tokenizer"].update(model="x.model"), "tokenizer: give exactly one of `model`"),
    (lambda d: d.update(seed=0), "seed: unknown key; valid keys are: output, variants"),
    (lambda d: d.update(output="s3://bucket/ablation"),
     "output: 's3://bucket/ablation' is a URL: training appends its metrics"),
])
def test_config_errors_name_the_key(tmp_path, stories, change, message):
    data = tiny_config(tmp_path, stories)
    change(data)
    with pytest.raises(ConfigError) as error:
        parse_ablate_config(data)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["ablate-curation", "ablate-filters", "ablate-dapt"])
def test_the_shipped_ablations_are_valid_configs(name):
    """Their variants' pipelines and the trainer's keys are checked here, not an hour into a run."""
    config = load_ablate_config(REPO / "configs" / f"{name}.yaml")
    assert len(config.variants) >= 2 and len(config.seeds) >= 3
    for variant in config.variants:
        if config.variants[variant].pipeline is not None:
            assert config.pipeline_config(variant, "unused").stages


def test_cli_exits_2_with_one_line(tmp_path, stories):
    data = tiny_config(tmp_path, stories)
    data["train"]["tokens"] = 0
    (tmp_path / "ablate.yaml").write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "ablate", str(tmp_path / "ablate.yaml")],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr == "thresher: error: train.tokens: Input should be greater than 0\n"
    assert not (tmp_path / "out").exists()


def test_every_variant_and_seed_is_trained_at_equal_tokens_and_reported(ablation):
    data, ablate = ablation
    config = parse_ablate_config(data)
    assert ablate["budget"]["steps"] == 16 and ablate["budget"]["tokens"] == 4096
    for variant in ("plain", "filtered"):
        for seed in ("0", "1", "2"):
            run = ablate["trainings"][variant][seed]
            assert run["steps"] == 16 and run["tokens_per_step"] == 256
            assert [step for step, _ in run["eval_loss"]] == [0, 8, 16]
        for e in ("reuters_heldout", "wikitext2"):
            ppl = ablate["perplexity"][variant][e]
            assert len(ppl["values"]) == 3 and 1 < ppl["mean"] < 400  # a 400-piece vocabulary bounds it
            assert ppl["std"] > 0  # different seeds, different models
    # Curation kept fewer documents: the filter dropped the short stories.
    kept = ablate["variants"]
    assert kept["filtered"]["documents"] < kept["plain"]["documents"] <= 300
    assert kept["plain"]["documents_read"] == 300
    manifest = read_json(kept["filtered"]["manifest"])
    assert kept["filtered"]["tokens"] == sum(d["tokens"] for d in manifest["domains"].values())
    assert manifest["tokenizer"]["sha256"] == read_json(kept["plain"]["manifest"])["tokenizer"]["sha256"]
    [pair_heldout, pair_wiki] = ablate["pairs"]
    assert (pair_heldout["a"], pair_heldout["b"], pair_wiki["eval_set"]) == ("plain", "filtered", "wikitext2")
    per_seed = [ablate["trainings"]["filtered"][s]["final"]["wikitext2"]["ppl"]
                - ablate["trainings"]["plain"][s]["final"]["wikitext2"]["ppl"] for s in ("0", "1", "2")]
    assert pair_wiki["diff"] == pytest.approx(sum(per_seed) / 3)
    html = (Path(config.output) / "report.html").read_text()
    for section in ("perplexity", "differences", "variants", "curves", "eval-sets"):
        assert f'data-section="{section}"' in html
    assert html.count("<svg") == 3  # training loss and one curve per eval set
    assert f'data-key="plain/wikitext2" data-value="{ablate["perplexity"]["plain"]["wikitext2"]["mean"]}"' in html


def test_a_killed_ablation_reruns_only_what_is_missing_and_gives_the_same_numbers(ablation, tmp_path):
    data, reference = ablation
    data = {**copy.deepcopy(data), "output": str(tmp_path / "out")}
    (tmp_path / "ablate.yaml").write_text(yaml.safe_dump(data, sort_keys=False))  # variants in their order
    command = [sys.executable, "-m", "pipeline.cli", "ablate", str(tmp_path / "ablate.yaml"), "--workers", "1",
               "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = tmp_path / "out" / "trainings" / "plain" / "seed-0" / "result.json"
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert first.exists()
    done = {p.parent.parent.name + "/" + p.parent.name: p.stat().st_mtime_ns
            for p in (tmp_path / "out" / "trainings").glob("*/*/result.json")}
    assert len(done) < 6, "the ablation finished before it was killed"
    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    lines = [line for line in rerun.stdout.splitlines() if line.startswith("[ablate] ") and " seed " in line]
    reused = {f"{line.split()[2]}/seed-{line.split()[4].rstrip(':')}" for line in lines if "done already" in line}
    assert reused == set(done) and len(lines) == 6
    assert sum("trained in" in line for line in lines) == 6 - len(done)
    assert "tokenizer: reusing" in rerun.stdout  # nor was the tokenizer trained again
    for name, mtime in done.items():  # committed results were not rewritten
        assert (tmp_path / "out" / "trainings" / name / "result.json").stat().st_mtime_ns == mtime
    # Determinism: another process, an interruption, the same config and seeds -> the same numbers.
    assert numbers(read_json(tmp_path / "out" / "ablate.json")) == numbers(reference)


def test_a_training_left_by_another_config_is_started_over(ablation, tmp_path):
    """A folder without a committed result whose checkpoints another config made is cleared,
    never resumed from; the fresh training gives the full run's numbers."""
    data, ablate = ablation
    config = parse_ablate_config({**data, "output": str(tmp_path / "out")})
    eval_sets = {n: read_json(Path(data["output"]) / "eval_sets" / f"{n}.json") for n in data["eval_sets"]}
    folder = training_dir(config, "plain", 0)
    (folder / "checkpoints" / "step-000999").mkdir(parents=True)
    write_json("made-with-another-config", folder / "fingerprint.json")
    result, trained = train_one(config, "plain", 0, ablate["variants"]["plain"]["manifest"], eval_sets)
    assert trained and not (folder / "checkpoints" / "step-000999").exists()
    assert result["final"] == ablate["trainings"]["plain"]["0"]["final"]
    assert train_one(config, "plain", 0, ablate["variants"]["plain"]["manifest"], eval_sets) == (result, False)


def test_shard_folders_as_variants_give_the_numbers_of_the_runs_that_made_them(ablation, tmp_path):
    data, ablate = ablation
    out = Path(data["output"])
    shards = {"variants": {v: {"shards": str(out / "variants" / v)} for v in ("plain", "filtered")},
              "tokenizer": {"model": str(out / "tokenizer" / "tokenizer.model")}, "output": str(tmp_path / "out")}
    again = run_ablation(parse_ablate_config({**data, **shards}), workers=1, progress=False)
    assert numbers(again) == numbers(ablate)
    other = tmp_path / "other.model"  # another tokenizer, trained on the held-out stories
    held = Path(data["eval_sets"]["reuters_heldout"]["path"]).read_text().splitlines()
    train_tokenizer([json.loads(line)["body"] for line in held], TokenizerOptions(vocab_size=400), other)
    with pytest.raises(ConfigError, match=r"^variants.plain: its shards were made with another tokenizer"):
        run_ablation(parse_ablate_config({**data, **shards, "tokenizer": {"model": str(other)}}), workers=1)


def test_continued_pre_training_starts_every_proxy_from_one_checkpoint(ablation, tmp_path):
    """`init_from` (the DAPT ablation, configs/ablate-dapt.yaml): every proxy starts from the
    same weights, so its step-0 perplexity on an eval set is the start's, the perplexity the
    checkpoint's own training ended with; per-variant `weights` set the replay ratio, and an
    eval set's `where` keeps the records it names."""
    data, ablate = ablation
    out = Path(data["output"])
    manifest = read_json(Path(ablate["variants"]["plain"]["manifest"]))
    domain = next(iter(manifest["domains"]))
    start = out / "trainings" / "plain" / "seed-0"
    held = Path(data["eval_sets"]["reuters_heldout"]["path"])
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"body": json.loads(line)["body"], "label": "ab"[i % 2]}) + "\n"
                                for i, line in enumerate(held.read_text().splitlines())))
    dapt = {**data, "output": str(tmp_path / "out"), "init_from": str(start),
            "variants": {"mixture": {"shards": str(out / "variants" / "plain")},
                         "only": {"shards": str(out / "variants" / "plain"), "weights": {domain: 1.0}}},
            "tokenizer": {"model": str(out / "tokenizer" / "tokenizer.model")},
            "eval_sets": {"reuters_heldout": data["eval_sets"]["reuters_heldout"],
                          "even": {"path": str(labelled), "format": "jsonl", "text_field": "body",
                                   "where": {"label": ["a"]}}}}
    result = run_ablation(parse_ablate_config(dapt), workers=1, progress=False)
    starts = {r["start"]["reuters_heldout"]["ppl"] for runs in result["trainings"].values() for r in runs.values()}
    ended = ablate["trainings"]["plain"]["0"]["final"]["reuters_heldout"]["ppl"]
    assert len(starts) == 1 and starts.pop() == pytest.approx(ended)
    assert result["start"]["reuters_heldout"] > 0 and set(result["vs_start"]) == {"mixture", "only"}
    held_out = result["held_out"]["only"][domain]  # the shards' own held-out sequences, start and end
    assert held_out["start"] > 0 and held_out["change"] == pytest.approx(held_out["final"] / held_out["start"] - 1)
    assert result["eval_sets"]["even"]["documents"] == 50  # every other held-out story
    with pytest.raises(ConfigError, match=r"^init_from: "):
        parse_ablate_config({**dapt, "init_from": 3})
