"""Trainer throughput: thresher's FSDP2 trainer (1 rank) vs a plain PyTorch loop, same run;
2 CPU ranks with the prefetching loader vs without; the loader index's memory per rank.

Both train the same Llama-style model (training/model.py) from the same seed on the same batch
shape with the same AdamW, accumulation and clipping; the plain loop is a bare single-process
`forward / backward / clip / step` over batches fetched beforehand, so the ratio is the price of
thresher's machinery (FSDP2 wrapping, the blended loader reading shards, logging). Each side is
timed per optimizer step; the first steps (warm-up) are dropped, the median step is reported,
and the median over repetitions (alternating the two) is printed. On a GPU it also prints MFU.

With `--prefetch`, `thresher train --nproc 2` runs with `data.prefetch: 2` (steps read ahead on
a background thread) and with 0 (read in the step loop), alternating, and the median tokens/s of
each is printed. With `--index-docs N`, two processes (as two ranks) open one domain of N
synthetic documents and touch its whole per-document index (lengths and two epochs of
orders), once built in memory by each and once memory-mapped from the shared cache
(training/index.py), and each process's resident (RSS), proportional (PSS: shared pages split
between the processes that map them) and private memory is printed.

    .venv/bin/python bench/train.py [--quick] [--manifest PATH] [--reps 3] [--steps 12]
    .venv/bin/python bench/train.py --prefetch [--reps 3] [--steps 16]
    .venv/bin/python bench/train.py --index-docs 10000000
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts bench/ first on the path, where bench/tokenize.py would shadow the
# standard library's tokenize; put the repository root there instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import multiprocessing
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tokenization.indexed import IndexedDataset, IndexedWriter
from training.config import parse_train_config
from training.data import BlendedLoader, PackedDomain
from training.index import IndexCache
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


def run_two_ranks(manifest: str, output: Path, steps: int, prefetch: int) -> float:
    """Median tokens/s per step of `thresher train --nproc 2` (gloo, FSDP2) with `data.prefetch`."""
    raw = bench_config(manifest, output, steps)
    raw["data"]["prefetch"] = prefetch
    raw["train"]["micro_batch_size"] = 4  # 16 sequences = 2 ranks x 4 x 2 accumulation steps
    config = output.with_suffix(".yaml")
    config.write_text(json.dumps(raw))  # JSON is YAML
    subprocess.run([sys.executable, "-m", "pipeline.cli", "train", str(config), "--nproc", "2"], check=True,
                   capture_output=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return statistics.median([r["tokens_per_s"] for r in records if "loss" in r][WARMUP_STEPS:])


def bench_prefetch(manifest: str, tmp: Path, reps: int, steps: int) -> None:
    rates: dict[int, list[float]] = {0: [], 2: []}
    for rep in range(reps):
        for depth in (0, 2):
            rates[depth].append(run_two_ranks(manifest, tmp / f"prefetch{depth}-{rep}", steps, depth))
        print(f"rep {rep}: prefetch 2 {rates[2][-1]:,.0f} tokens/s   prefetch 0 {rates[0][-1]:,.0f} tokens/s",
              flush=True)
    with_, without = statistics.median(rates[2]), statistics.median(rates[0])
    print(f"\n2 CPU ranks (gloo, FSDP2), model {MODEL}, seq 128, 16 sequences/step, {steps} steps, {reps} reps")
    print(f"prefetch 2 (background thread):   {with_:>10,.0f} tokens/s (median)")
    print(f"prefetch 0 (read in the loop):    {without:>10,.0f} tokens/s (median)")
    print(f"ratio:                            {with_ / without:>10.3f}")


def synthetic_shard(prefix: Path, n_docs: int) -> IndexedDataset:
    """`n_docs` documents of 2..30 tokens (seeded), as one shard."""
    lengths = np.random.default_rng(0).integers(2, 31, n_docs)
    with IndexedWriter(prefix) as writer:
        for start in range(0, n_docs, 1_000_000):
            chunk = lengths[start:start + 1_000_000]
            writer.add_documents(np.ones(int(chunk.sum()), dtype=np.uint16), chunk.tolist())
    return IndexedDataset(prefix)


def memory_kib() -> dict[str, int]:
    """This process's Rss, Pss and private (Private_Clean + Private_Dirty) memory, KiB."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":")
        fields[name] = int(value.split()[0])
    return {"rss": fields["Rss"], "pss": fields["Pss"], "private": fields["Private_Clean"] + fields["Private_Dirty"]}


def index_rank(prefix: str, cache: str | None, ready, go, out) -> None:
    """One 'rank': open the domain, touch its whole index, wait for the other, report memory."""
    before = memory_kib()
    domain = PackedDomain("d", [IndexedDataset(prefix)], seq_len=128, seed=0,
                          index=IndexCache(Path(cache)) if cache else None)
    for array in (domain.lengths, *domain._epoch(0), *domain._epoch(1)):
        np.asarray(array).sum()  # every page resident
    ready.wait()  # both ranks hold their index now
    after = memory_kib()
    out.put({k: after[k] - before[k] for k in after})
    go.wait()


def bench_index(n_docs: int, tmp: Path) -> None:
    shard = synthetic_shard(tmp / "synthetic", n_docs)
    print(f"{n_docs:,} documents, {shard.num_tokens:,} tokens, seq 128: lengths + 2 epochs of orders")
    context = multiprocessing.get_context("spawn")
    for label, cache in (("in memory, each rank", None), ("memory-mapped cache", str(tmp / "index"))):
        if cache:  # built once beforehand, as the first rank of a run would
            PackedDomain("d", [shard], 128, 0, index=IndexCache(Path(cache)))._epoch(1)
        ready, go, out = context.Barrier(3), context.Barrier(3), context.Queue()
        ranks = [context.Process(target=index_rank, args=(str(shard.prefix), cache, ready, go, out)) for _ in range(2)]
        for rank in ranks:
            rank.start()
        ready.wait()
        reports = [out.get() for _ in ranks]
        go.wait()
        for rank in ranks:
            rank.join()
        mib = {k: statistics.mean(r[k] for r in reports) / 1024 for k in ("rss", "pss", "private")}
        print(f"{label:<24} per rank: RSS {mib['rss']:>7,.0f} MiB   PSS {mib['pss']:>7,.0f} MiB   "
              f"private {mib['private']:>7,.0f} MiB   ({1024 * 1024 * mib['pss'] / n_docs:.1f} B/document)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions of 8 steps")
    parser.add_argument("--manifest", help="a tokenize stage's manifest (default: build small shards)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both (default 1: steadier "
                        "on a shared machine)")
    parser.add_argument("--prefetch", action="store_true", help="2 CPU ranks with and without prefetching")
    parser.add_argument("--index-docs", type=int, metavar="N", help="memory of the loader index of N documents")
    args = parser.parse_args()
    if args.index_docs:
        with tempfile.TemporaryDirectory() as tmp:
            bench_index(args.index_docs, Path(tmp))
        return
    torch.set_num_threads(args.threads)
    reps, steps = (2, 8) if args.quick else (args.reps, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            from tests.training.shard_builder import build_shards

            manifest = str(build_shards(Path(tmp) / "shards"))
        if args.prefetch:
            bench_prefetch(manifest, Path(tmp), args.reps, 16 if args.steps == 12 else args.steps)
            return
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
