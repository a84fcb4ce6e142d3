"""FSDP2 pre-training and domain-adaptive continued pre-training on thresher's shards.

Every rank builds the same model from the seed, shards each transformer block and the root with
`fully_shard` when there is more than one rank (bf16 compute / fp32 gradient reduction on GPU,
fp32 on CPU), and trains with AdamW, linear warmup then cosine decay to `min_lr_ratio` of the
peak, gradient accumulation and clipping. Checkpoints (training/checkpoint.py) resume exactly, also
on another number of ranks;
`checkpoint.init_from` starts a new run from a checkpoint's weights (domain adaptation).

    thresher train configs/train-tiny.yaml --nproc 2            # starts 2 local ranks
    torchrun --nproc-per-node 8 -m training.train configs/train-125m.yaml   # or under torchrun
"""

from __future__ import annotations

import argparse
import base64
import gc
import math
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from training.checkpoint import Checkpointer, load_weights
from training.config import TrainConfig, TrainOptions, load_train_config
from training.data import BlendedLoader, PackedDomain, Prefetcher, validation_sets
from training.index import IndexCache
from training.metrics import MetricLogger
from training.model import Transformer
from training.shards import load_manifest


def train(config: TrainConfig) -> dict:
    """Join or start the process group, train, and tear the group down before returning."""
    with Distributed.start() as env:
        return _train(config, env)  # the model, optimizer and loader die with this call's frame


def _train(config: TrainConfig, env: Distributed) -> dict:
    """Load or initialise, then step, log, validate and checkpoint until `train.steps`."""
    config.configure_storage()
    manifest = load_manifest(config.data.manifest)
    index = IndexCache(Path(config.data.index_cache or Path(config.output) / "data-index"))
    loader = BlendedLoader.from_manifest(manifest, config.data.seq_len, config.seed, config.data.weights, index)
    valid = validation_sets(manifest, config.data.seq_len, config.eval.sets)
    model = build_model(config, manifest.vocab_size, env)
    optimizer, scheduler = build_optimizer(model, config.train)
    accum = config.grad_accum_steps(env.world_size)
    checkpointer = Checkpointer(config.checkpoint_folder, config.checkpoint.keep)
    checkpointer.check_writable()
    log = MetricLogger(Path(config.output), config, model, env, accum)

    step = restore(checkpointer, config, model, optimizer, scheduler, loader, log)
    if step == 0:
        log.eval(step, evaluate(model, valid, config, env))
    opts = config.train
    with Prefetcher(loader, opts.global_batch_size, opts.micro_batch_size, env.rank, env.world_size,
                    config.data.prefetch) as batches:
        while step < opts.steps:
            step += 1
            log.start_step()
            loss, grad_norm = train_step(model, optimizer, batches.next_step(), opts.grad_clip, env)
            log.step(step, loss, grad_norm, scheduler.get_last_lr()[0])
            scheduler.step()
            if step % config.eval.every == 0 or step == opts.steps:
                log.eval(step, evaluate(model, valid, config, env))
            if step % config.checkpoint.every == 0 or step == opts.steps:
                path = checkpointer.save(step, model, optimizer, trainer_state(step, scheduler, batches), log.path)
                log.note(f"saved checkpoint {path}")
    return log.finish()


@dataclass
class Distributed:
    rank: int
    world_size: int
    device: torch.device
    mesh: DeviceMesh
    owns_group: bool

    @classmethod
    def start(cls) -> Distributed:
        """Join torchrun's process group (RANK/WORLD_SIZE set) or make a one-rank group."""
        cuda = torch.cuda.is_available()
        owns = not dist.is_initialized()
        if owns and "RANK" in os.environ:
            dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")
        elif owns:
            dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo",
                                    store=dist.HashStore(), rank=0, world_size=1)
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        return cls(dist.get_rank(), dist.get_world_size(), device, mesh, owns)

    def __enter__(self) -> Distributed:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        """Destroy the group, and with it gloo's worker threads, while Python is fully alive.

        `destroy_process_group` only forgets the group: it lives on while anything refers to it,
        and DTensor's sharding-propagation caches (module-level) keep every DTensorSpec they saw,
        hence the DeviceMesh and its process groups, until the interpreter exits. A gloo worker
        thread that then releases a finished collective (a barrier holds the works before it,
        with their tensors) must take the GIL to free those tensors' Python objects; during
        interpreter finalization that kills the thread inside a noexcept C++ frame, and the rank
        dies with `terminate called without an active exception` (SIGABRT) after a run that
        succeeded, more often on a loaded machine, where the thread is scheduled late. So: every
        rank passes a last barrier, the caches and the mesh let go, and the group's destructor
        joins its threads here (c10d releases the GIL for it)."""
        if not self.owns_group:
            return
        if exc_type is None:
            dist.barrier()  # after a failure a peer may never get here: no collective then
        self.mesh = None
        release_dtensor_caches()
        gc.collect()  # FSDP module states and DTensors hold the mesh in reference cycles
        dist.destroy_process_group()


LRU_CACHE = type(lru_cache(None)(lambda: None))


def release_dtensor_caches() -> None:
    """Empty the module-level caches of torch.distributed whose entries hold device meshes
    (and so process groups): DTensor's sharding propagation (a Python and a C++ cache),
    redistribution planners and transform plans, mesh topology. They are private and change
    between torch releases, so every `functools.lru_cache` found on those modules and their
    classes is cleared rather than a list of names; `tests/training/test_train.py` checks that
    no gloo thread outlives a 2-rank run, so a cache this misses fails there."""
    from torch.distributed.tensor import _redistribute, debug

    getattr(debug, "_clear_sharding_prop_cache", lambda: None)()
    getattr(_redistribute, "clear_redistribute_planner_cache", lambda: None)()
    for name, module in list(sys.modules.items()):
        if name.startswith("torch.distributed") and module is not None:
            for value in list(vars(module).values()):
                # type(), not isinstance(): some module attributes warn when their class is asked for
                for item in (value, *(vars(value).values() if type(value) is type else ())):
                    if type(item) in (staticmethod, classmethod):
                        item = item.__func__
                    if type(item) is LRU_CACHE:
                        item.cache_clear()


def build_model(config: TrainConfig, vocab_size: int, env: Distributed) -> Transformer:
    """The same initial weights on every rank (seeded), then each block and the root sharded.

    One rank has nothing to shard, so, as torchtitan does (FSDP only when dp_shard > 1), the
    model stays a plain module there and bf16 comes from autocast; its checkpoints still load
    on any number of ranks, since DCP stores global shapes either way."""
    cfg = config.model
    if cfg.vocab_size and cfg.vocab_size < vocab_size:
        raise ValueError(f"model.vocab_size ({cfg.vocab_size}) is smaller than the shards' vocabulary ({vocab_size})")
    cfg = cfg.model_copy(update={"vocab_size": cfg.vocab_size or vocab_size})
    torch.manual_seed(config.seed)
    model = Transformer(cfg)
    bf16 = config.train.precision == "bf16" or (config.train.precision == "auto" and env.device.type == "cuda")
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16
              else MixedPrecisionPolicy())
    for block in model.layers:
        block.checkpoint_activations = config.train.activation_checkpointing
        if config.train.compile:
            block.compile()
        if env.world_size > 1:
            fully_shard(block, mesh=env.mesh, mp_policy=policy)
    if env.world_size > 1:
        fully_shard(model, mesh=env.mesh, mp_policy=policy)
        return model
    if bf16:
        model.forward = torch.autocast(env.device.type, dtype=torch.bfloat16)(model.forward)
    return model.to(env.device)


def lr_factor(step: int, opts: TrainOptions) -> float:
    """Linear warmup to the peak over `warmup_steps`, then cosine to `min_lr_ratio` at the last step."""
    if step < opts.warmup_steps:
        return (step + 1) / opts.warmup_steps
    progress = min(1.0, (step - opts.warmup_steps) / max(1, opts.steps - 1 - opts.warmup_steps))
    return opts.min_lr_ratio + (1 - opts.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, opts: TrainOptions):
    """AdamW; weight decay on matrices only (not norms), as in GPT-3/Llama training."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": opts.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=opts.lr, betas=opts.betas, foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, opts))
    return optimizer, scheduler


def restore(checkpointer: Checkpointer, config: TrainConfig, model, optimizer, scheduler,
            loader: BlendedLoader, log: MetricLogger) -> int:
    """Resume this run's newest intact checkpoint, else load `init_from` weights; the step to go on from."""
    had_any = checkpointer.latest() is not None
    latest = checkpointer.latest_intact(log.note)
    if had_any and latest is None:
        log.note(f"warning: no intact checkpoint left in {checkpointer.folder}; starting from scratch")
    if latest is not None:
        state = checkpointer.load(latest, model, optimizer)
        scheduler.load_state_dict(state["scheduler"])
        loader.load_state_dict(state["data"])
        torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["rng"])), dtype=torch.uint8))
        log.note(f"resumed from {latest} (step {state['step']}, {loader.consumed} samples consumed)")
        if checkpointer.restore_log(latest, log.path):
            log.note(f"restored {log.path.name} up to step {state['step']} from the checkpoint")
        return state["step"]
    log.reset()  # a fresh run: earlier metrics in OUTPUT belong to a run that is gone
    if config.checkpoint.init_from:
        log.note(f"initialised weights from {load_weights(model, config.checkpoint.init_from, log.note)} "
                 "(fresh optimizer, schedule and data order)")
    return 0


def trainer_state(step: int, scheduler, loader: BlendedLoader | Prefetcher) -> dict:
    rng = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()
    return {"step": step, "scheduler": scheduler.state_dict(), "data": loader.state_dict(), "rng": rng}


def train_step(model, optimizer, micro_batches: list[torch.Tensor], grad_clip: float,
               env: Distributed) -> tuple[float, float]:
    """Accumulate gradients over the micro-batches, clip, step; the global mean loss and grad norm."""
    total = torch.zeros((), device=env.device)
    for batch in micro_batches:
        batch = batch.to(env.device, non_blocking=True)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten()) / len(micro_batches)
        loss.backward()  # FSDP averages gradients over ranks: the gradient of the global mean loss
        total += loss.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    grad_norm = grad_norm.full_tensor() if isinstance(grad_norm, DTensor) else grad_norm
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    dist.all_reduce(total)  # gloo has no AVG
    return total.item() / env.world_size, grad_norm.item()


@torch.no_grad()
def evaluate(model, valid: dict[str, PackedDomain], config: TrainConfig, env: Distributed) -> dict:
    """Mean next-token loss and perplexity on each domain's held-out shard (first `eval.samples`
    sequences, split over ranks; every rank runs the same number of forwards, as FSDP needs)."""
    results, micro = {}, config.train.micro_batch_size
    for name, packed in valid.items():
        n = min(config.eval.samples, packed.samples_per_epoch)
        per_rank = -(-n // env.world_size)
        totals = torch.zeros(2, dtype=torch.float64, device=env.device)
        for start in range(0, per_rank, micro):
            ids = [env.rank * per_rank + j for j in range(start, min(start + micro, per_rank))]
            batch = torch.from_numpy(np.stack([packed.sample(min(i, n - 1)) for i in ids])).to(env.device)
            keep = torch.tensor([i < n for i in ids], dtype=torch.float64, device=env.device)
            logits = model(batch[:, :-1])
            losses = F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten(), reduction="none")
            totals += torch.stack([(losses.view(len(ids), -1).sum(1).double() * keep).sum(),
                                   keep.sum() * config.data.seq_len])
        dist.all_reduce(totals)
        loss = (totals[0] / totals[1]).item()
        results[name] = {"loss": loss, "ppl": math.exp(loss)}
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point for each rank under torchrun: `python -m training.train CONFIG [--set K=V]`."""
    parser = argparse.ArgumentParser(prog="python -m training.train")
    parser.add_argument("config")
    parser.add_argument("--output")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        train(load_train_config(args.config, args.set, args.output))
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("THRESHER_DEBUG"):
            raise
        print(f"thresher: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
