"""One proxy per (variant, seed), trained with the bundled trainer, and the numbers they give.

Each training runs in this process (a one-rank group, as `thresher train --nproc 1`) under
`OUTPUT/trainings/<variant>/seed-<s>/`, its log in `train.log`. Its `result.json` is written
last and atomically: it commits that training, so a rerun skips it while its fingerprint (the
trainer's config, the shards' manifest and the eval sets) holds, and a training killed midway
resumes from its last checkpoint if `fingerprint.json` (written first) says it was made with the
same fingerprint; otherwise the folder is cleared and the training starts over. Trainings go
seed by seed, every variant within a seed, so an interrupted ablation already compares the
variants.

`summarize` turns the results into `ablate.json`'s numbers: per variant and eval set the
perplexity's mean and sample standard deviation over seeds, and per pair of variants the
difference of the means with the spread of the per-seed (paired) differences.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import shutil
import statistics
import time
from pathlib import Path

from pipeline.config import config_hash
from pipeline.io import file_sha256, read_json, write_json
from training.ablate.config import AblateConfig


def training_dir(config: AblateConfig, variant: str, seed: int) -> Path:
    return Path(config.output) / "trainings" / variant / f"seed-{seed}"


def train_one(config: AblateConfig, variant: str, seed: int, manifest: str,
              eval_sets: dict[str, dict]) -> tuple[dict, bool]:
    """(result, whether it was trained now) of one proxy; a committed result is reused."""
    from training.train import train

    folder = training_dir(config, variant, seed)
    train_config = config.train_config(manifest, str(folder), seed, eval_sets, config.variants[variant].weights)
    # Settings ablate never sets are left out, so adding them to the trainer keeps finished proxies.
    stable = train_config.model_dump(mode="json", exclude={"output": True, "data": {"manifest", "index_cache"},
                                                           "checkpoint": {"folder"}, "storage_options": True})
    fingerprint = config_hash([stable, file_sha256(manifest), {n: s["fingerprint"] for n, s in eval_sets.items()}])
    receipt, started = folder / "result.json", folder / "fingerprint.json"
    if receipt.is_file() and read_json(receipt)["fingerprint"] == fingerprint:
        return read_json(receipt), False
    if folder.exists() and not (started.is_file() and read_json(started) == fingerprint):
        shutil.rmtree(folder)  # made with another config: its checkpoints must not be resumed
    write_json(fingerprint, started)  # what the checkpoints below were made with
    start = time.perf_counter()
    with open(folder / "train.log", "a") as log, contextlib.redirect_stdout(log):
        train(train_config)
    result = {"variant": variant, "seed": seed, "fingerprint": fingerprint, "steps": train_config.train.steps,
              "tokens_per_step": train_config.train.global_batch_size * train_config.data.seq_len,
              "seconds": round(time.perf_counter() - start, 1), **curves(folder / "metrics.jsonl", eval_sets)}
    write_json(result, receipt)  # last: commits the training
    return result, True


def curves(metrics: Path, eval_sets: dict[str, dict]) -> dict:
    """Training loss per step and each eval set's loss at every validation, from metrics.jsonl,
    plus the final validation's loss and perplexity per eval set."""
    loss, evals = {}, {}
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        if "eval" in record:
            evals[record["step"]] = {n: record["eval"][n]["loss"] for n in eval_sets}
        else:
            loss[record["step"]] = record["loss"]
    last = evals[max(evals)]
    return {"loss": [[s, v] for s, v in sorted(loss.items())], "eval_loss": [[s, v] for s, v in sorted(evals.items())],
            "final": {n: {"loss": v, "ppl": math.exp(v)} for n, v in last.items()},
            "start": {n: {"loss": v, "ppl": math.exp(v)} for n, v in evals.get(0, {}).items()}}


def run_trainings(config: AblateConfig, manifests: dict[str, str], eval_sets: dict[str, dict]) -> dict:
    """Every (variant, seed) result, training what is missing; prints one line per training."""
    results: dict[str, dict[int, dict]] = {name: {} for name in config.variants}
    order = list(itertools.product(config.seeds, config.variants))
    for i, (seed, variant) in enumerate(order, 1):
        result, trained = train_one(config, variant, seed, manifests[variant], eval_sets)
        results[variant][seed] = result
        ppl = "  ".join(f"{n} {v['ppl']:.2f}" for n, v in result["final"].items())
        what = f"trained in {result['seconds']:.0f}s" if trained else "done already"
        print(f"[ablate] {i}/{len(order)} {variant} seed {seed}: {what}; ppl {ppl}", flush=True)
    return results


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def summarize(config: AblateConfig, results: dict[str, dict[int, dict]]) -> dict:
    """Perplexity mean ± std per variant and eval set, and every pair's paired differences."""
    ppl = {v: {e: mean_std([results[v][s]["final"][e]["ppl"] for s in config.seeds]) for e in config.eval_sets}
           for v in config.variants}
    pairs = []
    for a, b in itertools.combinations(config.variants, 2):
        for e in config.eval_sets:
            diffs = [results[b][s]["final"][e]["ppl"] - results[a][s]["final"][e]["ppl"] for s in config.seeds]
            spread = max(ppl[a][e]["std"], ppl[b][e]["std"])
            diff = statistics.fmean(diffs)
            pairs.append({"a": a, "b": b, "eval_set": e, "diff": diff, "diff_std": statistics.stdev(diffs),
                          "relative": diff / ppl[a][e]["mean"], "seed_spread": spread,
                          "beyond_twice_spread": abs(diff) > 2 * spread})
    out = {"perplexity": ppl, "pairs": pairs}
    if config.init_from:  # the starting checkpoint's perplexity (step 0) and each variant's change from it
        start = {e: statistics.fmean(results[v][s]["start"][e]["ppl"] for v in config.variants for s in config.seeds)
                 for e in config.eval_sets}
        out["start"] = start
        out["vs_start"] = {v: {e: ppl[v][e]["mean"] / start[e] - 1 for e in config.eval_sets} for v in config.variants}
        out["held_out"] = held_out_change(config)
    return out


def held_out_change(config: AblateConfig) -> dict[str, dict[str, dict]]:
    """Per variant and domain of its shards' own held-out sequences (validated beside the eval
    sets): perplexity at step 0 and at the end, mean over seeds, and the change. In-distribution
    text, unlike the eval sets: what continued pre-training on a domain is expected to move."""
    out: dict[str, dict[str, dict]] = {}
    for variant in config.variants:
        first: dict[str, list[float]] = {}
        last: dict[str, list[float]] = {}
        for seed in config.seeds:
            evals = [json.loads(line) for line in (training_dir(config, variant, seed) / "metrics.jsonl")
                     .read_text().splitlines() if '"eval"' in line]
            for name in (n for n in evals[0]["eval"] if n not in config.eval_sets):
                first.setdefault(name, []).append(evals[0]["eval"][name]["ppl"])
                last.setdefault(name, []).append(evals[-1]["eval"][name]["ppl"])
        out[variant] = {n: {"start": statistics.fmean(first[n]), "final": statistics.fmean(last[n]),
                            "change": statistics.fmean(last[n]) / statistics.fmean(first[n]) - 1} for n in first}
    return out
