"""`thresher train` and `thresher plan`.

    thresher train configs/train-tiny.yaml --nproc 2 [--output DIR] [--set train.steps=20]
    thresher export-hf out/train-tiny --output out/train-tiny-hf [--dtype bf16]
    thresher plan --params 1B [--gpus 8] [--mfu 0.4] [--precision fp32|bf16|mixed] [--json]

`thresher train` starts N local ranks itself (torch.distributed.run, as `torchrun --standalone`),
or, when torchrun (e.g. on Slurm) already set RANK/WORLD_SIZE, runs as one of its ranks:
`torchrun --nnodes 2 --nproc-per-node 8 ... $(which thresher) train CONFIG`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pipeline.interrupts import call_in_own_group


def cmd_train(args: argparse.Namespace) -> int:
    from training.config import load_train_config

    config = load_train_config(args.config, args.set, args.output)  # bad config fails here, once
    if "RANK" in os.environ or args.nproc == 1:
        from training.train import train

        train(config)
        return 0
    if args.nproc < 1:
        raise ValueError("--nproc: must be at least 1")
    _preflight(config, args.nproc)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "training.train", args.config, *(f"--set={item}" for item in args.set)]
    if args.output:
        command += ["--output", args.output]
    return call_in_own_group(command)  # Ctrl-C: one line from thresher, nothing from torchrun or the ranks


def _preflight(config, nproc: int) -> None:
    """What would fail on every rank, failed once here with one line."""
    from training.checkpoint import complete_checkpoints, init_candidates, unwritable
    from training.shards import load_manifest

    config.grad_accum_steps(nproc)
    config.configure_storage()
    load_manifest(config.data.manifest)
    problem = unwritable(config.checkpoint_folder)
    if problem:
        raise ValueError(problem)
    if config.checkpoint.init_from and not complete_checkpoints(config.checkpoint_folder):
        init_candidates(config.checkpoint.init_from)


def cmd_export_hf(args: argparse.Namespace) -> int:
    from training.export import export_hf

    record = export_hf(args.run, args.output, args.dtype)
    print(f"exported {record['checkpoint']} (step {record['step']}, {record['parameters'] / 1e6:.2f}M parameters, "
          f"{record['dtype']}) to {args.output}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from training.plan import format_plan, manifest_tokens, parse_count, plan

    tokens = parse_count(args.tokens, "--tokens") if args.tokens else None
    if args.manifest:
        if tokens is not None:
            raise ValueError("--manifest: give either --tokens or --manifest")
        tokens = manifest_tokens(args.manifest)
    result = plan(params=parse_count(args.params, "--params") if args.params else None, tokens=tokens,
                  flops=parse_count(args.flops, "--flops") if args.flops else None, gpus=args.gpus,
                  mfu=args.mfu, precision=args.precision, tokens_per_param=args.tokens_per_param)
    print(json.dumps(result) if args.json else format_plan(result))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or domain-adapt a Llama-style model on tokenized shards (FSDP2)",
                       description="Pre-train, or continue from checkpoint.init_from, on the shards named by "
                       "data.manifest. Rerunning resumes from the newest checkpoint in OUTPUT/checkpoints "
                       "(or checkpoint.folder, which may be an s3:// URL).")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--nproc", type=int, default=1, metavar="N", help="local ranks to start (default 1; "
                   "ignored under torchrun)")
    p.add_argument("--output", metavar="DIR", help="output directory (overrides the config's `output`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=20 (repeatable)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export-hf", help="a trained run as a Hugging Face Llama checkpoint (safetensors)",
                       description="Convert RUN's newest intact checkpoint to a LlamaForCausalLM folder: "
                       "model.safetensors, config.json, the sentencepiece tokenizer and its configs.")
    p.add_argument("run", metavar="RUN", help="a `thresher train` output folder, or a URL holding a copy of one")
    p.add_argument("--output", required=True, metavar="DIR", help="a new (or empty) folder, or a URL (s3://...)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="weights' type (default fp32)")
    p.set_defaults(func=cmd_export_hf)

    p = sub.add_parser("plan", help="compute-optimal tokens, FLOPs, GPU-hours and memory for a model",
                       description="Chinchilla pairing (~20 tokens/param), training FLOPs 6ND, petaflop/s-days, "
                       "A100/H100 hours at an MFU, and training memory per GPU under FSDP.")
    p.add_argument("--params", metavar="N", help="model parameters, e.g. 1B, 400M, 7e9")
    p.add_argument("--tokens", metavar="N", help="training tokens, e.g. 1.4T")
    p.add_argument("--manifest", metavar="PATH", help="tokenize stage's manifest.json (or its folder): its tokens")
    p.add_argument("--flops", metavar="N", help="training compute budget in FLOPs, e.g. 1.2e20")
    p.add_argument("--gpus", type=int, default=1, metavar="N", help="GPUs sharing the model with FSDP (default 1)")
    p.add_argument("--mfu", type=float, default=0.4, metavar="X", help="model FLOPs utilisation (default 0.4)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "mixed", "bf16"),
                   help="memory per GPU at this precision (default fp32, 24 B/param)")
    p.add_argument("--tokens-per-param", type=float, default=20.0, metavar="X",
                   help="compute-optimal tokens per parameter (default 20, Chinchilla)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_plan)
