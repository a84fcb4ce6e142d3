"""Trainer throughput: thresher's FSDP2 trainer (1 rank) vs a plain PyTorch loop, same run.

Both train the same Llama-style model (training/model.py) from the same seed on the same batch
shape with the same AdamW, accumulation and clipping; the plain loop is a bare single-process
`forward / backward / clip / step` over batches fetched beforehand, so the ratio is the price of
thresher's machinery (FSDP2 wrapping, the blended loader reading shards, logging). Each side is
timed per optimizer step; the first steps (warm-up) are dropped, the median step is reported,
and the median over repetitions (alternating the two) is printed. On a GPU it also prints MFU.

    .venv/bin/python bench/train.py [--quick] [--manifest PATH] [--reps 3] [--steps 12]
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts bench/ first on the path, where bench/tokenize.py would shadow the
# standard library's tokenize; put the repository root there instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training.config import parse_train_config
from training.data import BlendedLoader
from training.model import Transformer
from training.shards import load_manifest
from training.train import build_optimizer, train

WARMUP_STEPS = 2
MODEL = {"dim": 256, "n_layers": 4, "n_heads": 8, "ffn_hidden": 688, "max_seq_len": 256}


def bench_config(manifest: str, output: Path, steps: int) -> dict:
    return {"output": str(output), "seed": 0, "model": MODEL,
            "data": {"manifest": manifest, "seq_len": 128},
            "train": {"steps": steps, "global_batch_size": 16, "micro_batch_size": 8, "lr": 1e-3, "warmup_steps": 2},
            "checkpoint": {"every": steps}, "eval": {"every": steps, "samples": 8}, "log": {"every": steps}}


def run_thresher(raw: dict) -> tuple[float, float | None]:
    """Median tokens/s per step of `thresher train` (1 rank, in this process), and its MFU."""
    summary = train(parse_train_config(raw))
    records = [json.loads(line) for line in (Path(raw["output"]) / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r][WARMUP_STEPS:]
    mfu = summary["last_step"].get("mfu")
    return statistics.median(r["tokens_per_s"] for r in steps), mfu


def run_plain(raw: dict) -> float:
    """Median tokens/s per step of a bare loop over the same model, batch shape and optimizer."""
    config = parse_train_config(raw)
    manifest = load_manifest(config.data.manifest)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loader = BlendedLoader.from_manifest(manifest, config.data.seq_len, config.seed)
    opts = config.train
    batches = [loader.next_step(opts.global_batch_size, opts.micro_batch_size, 0, 1) for _ in range(opts.steps)]
    torch.manual_seed(config.seed)
    model = Transformer(config.model.model_copy(update={"vocab_size": manifest.vocab_size})).to(device)
    optimizer, _ = build_optimizer(model, opts)
    rates = []
    for micro_batches in batches:
        start = time.perf_counter()
        for batch in micro_batches:
            batch = batch.to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten()) / len(micro_batches)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # wait for the device, as the trainer's logging does
        rates.append(opts.global_batch_size * config.data.seq_len / (time.perf_counter() - start))
    return statistics.median(rates[WARMUP_STEPS:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions of 8 steps")
    parser.add_argument("--manifest", help="a tokenize stage's manifest (default: build small shards)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both (default 1: steadier "
                        "on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reps, steps = (2, 8) if args.quick else (args.reps, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            from tests.training.shard_builder import build_shards

            manifest = str(build_shards(Path(tmp) / "shards"))
        thresher, plain, mfus = [], [], []
        for rep in range(reps):
            rate, mfu = run_thresher(bench_config(manifest, Path(tmp) / f"run-{rep}", steps))
            thresher.append(rate)
            mfus.append(mfu)
            plain.append(run_plain(bench_config(manifest, Path(tmp) / "plain", steps)))
            print(f"rep {rep}: thresher {rate:,.0f} tokens/s   plain {plain[-1]:,.0f} tokens/s", flush=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} thread(s)"
    t, p = statistics.median(thresher), statistics.median(plain)
    print(f"\nmodel {MODEL}, seq 128, 16 sequences/step (8 x 2 accumulation), {steps} steps, {reps} reps on {device}")
    print(f"thresher trainer (1 rank):        {t:>10,.0f} tokens/s (median)")
    print(f"plain PyTorch loop:               {p:>10,.0f} tokens/s (median)")
    print(f"ratio thresher / plain:           {t / p:>10.3f}   (target >= 0.95)")
    if all(m is not None for m in mfus):
        print(f"MFU (thresher):                   {100 * statistics.median(mfus):>9.1f}%")


if __name__ == "__main__":
    main()
