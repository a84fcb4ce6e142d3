"""Compute and memory planner: Chinchilla pairing, FLOPs, petaflop/s-days, GPU-hours, GPU memory.

    thresher plan --params 1B                       # compute-optimal tokens, FLOPs, memory
    thresher plan --manifest out/demo/07-tokenize   # the model size its tokens support
    thresher plan --flops 1.2e20 --gpus 8 --mfu 0.4 --json

Rules (the seeds' lecture notes, DESIGN.md):
- Training FLOPs C = 6·N·D (Kaplan et al. 2020: 2 FLOPs per weight per token forward, 4 backward).
- Compute-optimal D = 20·N (Hoffmann et al. 2022, "Chinchilla"; 70B -> 1.4T tokens). The paper's
  Table 3 rows drift slowly above 20 (400M -> 8.0B, 1B -> 20.2B, 10B -> 205.1B: 20.0, 20.2, 20.5
  tokens/param, from the Approach-1 fit). Fitting that drift as a power law N^0.0078 through
  the table would put 70B at 1.46T, 4% off the 1.4T Chinchilla was trained on; the flat 20·N
  rule meets all four within 2.5%, so it is the rule used here (`--tokens-per-param` changes it).
- Given only C: N = sqrt(C / (6·20)), D = 20·N. Given C and one of N, D: the other from C = 6·N·D.
- 1 petaflop/s-day = 1e15 FLOP/s x 86,400 s. GPU-hours = C / (peak x MFU) / 3,600 with bf16
  dense peaks A100 312 TFLOP/s, H100 989 TFLOP/s.
- Memory per parameter: fp32 4 (weights) + 8 (Adam m, v) + 4 (gradients) + ~8 (activations and
  temporaries, a high-end estimate) = 24 B; bf16 halves every term (12 B); mixed (what
  training/train.py runs on GPU: fp32 master weights, Adam state and reduced gradients, bf16
  activations) = 20 B. 1B params: 4 GB to store, 24 GB to train at fp32.
- Per GPU: FSDP (ZeRO-3) shards weights, gradients and Adam state over the GPUs, and each GPU
  holds the activations of its 1/GPUs of the global batch, so every term divides by --gpus.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

TOKENS_PER_PARAM = 20.0
PF_DAY = 1e15 * 86_400
GPU_PEAK_FLOPS = {"A100": 312e12, "H100": 989e12}  # bf16 dense, NVIDIA data sheets
BYTES_PER_PARAM = {  # weights, optimizer (Adam m and v), gradients, activations
    "fp32": (4, 8, 4, 8),
    "bf16": (2, 4, 2, 4),
    "mixed": (4, 8, 4, 4),
}
_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}


def parse_count(text: str | float, setting: str = "value") -> float:
    """'400M', '1.4T', '20.2B', '1e9', '1,000' -> float."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9.,]+(?:[eE][+-]?\d+)?)\s*([KMBGTP]?)\s*", str(text).upper())
        if not match:
            raise ValueError(f"{setting}: {text!r} is not a number like 400M, 1.4T or 1e9")
        value = float(match.group(1).replace(",", "")) * _SUFFIX[match.group(2)]
    if not value > 0:
        raise ValueError(f"{setting}: must be positive, got {text!r}")
    return value


def manifest_tokens(path: str | Path) -> float:
    """Training tokens in a tokenize stage's manifest (the file, its folder, or the run's output)."""
    from pipeline import storage
    from training.shards import find_manifest

    path = find_manifest(path)  # a local path or a URL
    if not storage.isfile(path):
        raise FileNotFoundError(f"--manifest: {path} does not exist")
    domains = json.loads(storage.read_bytes(path)).get("domains", {})
    return float(sum(d.get("tokens", 0) for d in domains.values()))


def pair(params: float | None, tokens: float | None, flops: float | None,
         tokens_per_param: float = TOKENS_PER_PARAM) -> tuple[float, float, float]:
    """Complete (N, D, C) from any one or two of them with C = 6ND and D = tokens_per_param·N."""
    given = sum(x is not None for x in (params, tokens, flops))
    if given == 0:
        raise ValueError("give one or two of --params, --tokens (or --manifest), --flops")
    if given == 3:
        raise ValueError("give at most two of --params, --tokens (or --manifest), --flops; "
                         "the third follows from C = 6ND")
    if flops is not None:
        if params is None and tokens is None:
            params = math.sqrt(flops / (6 * tokens_per_param))
        params = params if params is not None else flops / (6 * tokens)
        tokens = tokens if tokens is not None else flops / (6 * params)
    elif params is None:
        params = tokens / tokens_per_param
    elif tokens is None:
        tokens = tokens_per_param * params
    return params, tokens, 6 * params * tokens


def plan(params: float | None = None, tokens: float | None = None, flops: float | None = None,
         gpus: int = 1, mfu: float = 0.4, precision: str = "fp32",
         tokens_per_param: float = TOKENS_PER_PARAM) -> dict:
    if gpus < 1:
        raise ValueError("--gpus: must be at least 1")
    if not 0 < mfu <= 1:
        raise ValueError("--mfu: must be in (0, 1], e.g. 0.4")
    if not tokens_per_param > 0:
        raise ValueError("--tokens-per-param: must be positive")
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"--precision: one of {', '.join(BYTES_PER_PARAM)}")
    n, d, c = pair(params, tokens, flops, tokens_per_param)
    gpu_hours = {name: c / (peak * mfu) / 3600 for name, peak in GPU_PEAK_FLOPS.items()}
    weights, adam, grads, activations = BYTES_PER_PARAM[precision]
    return {
        "params": n, "tokens": d, "flops": c, "tokens_per_param": d / n,
        "compute_optimal_tokens": tokens_per_param * n, "pf_days": c / PF_DAY,
        "mfu": mfu, "gpus": gpus, "gpu_hours": gpu_hours,
        "days": {name: hours / gpus / 24 for name, hours in gpu_hours.items()},
        "store_gb_fp32": 4 * n / 1e9, "store_gb_bf16": 2 * n / 1e9,
        **{f"train_gb_{p}": sum(BYTES_PER_PARAM[p]) * n / 1e9 for p in BYTES_PER_PARAM},
        "precision": precision,
        "model_states_gb_per_gpu": (weights + adam + grads) * n / 1e9 / gpus,
        "activations_gb_per_gpu": activations * n / 1e9 / gpus,
        "train_gb_per_gpu": (weights + adam + grads + activations) * n / 1e9 / gpus,
    }


def _count(x: float) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _num(x: float) -> str:
    return f"{x:,.1f}" if x >= 10 else f"{x:.3g}"


def format_plan(p: dict) -> str:
    optimal = "compute-optimal" if abs(p["tokens_per_param"] / TOKENS_PER_PARAM - 1) < 0.01 else \
        f"compute-optimal would be {_count(p['compute_optimal_tokens'])} tokens"
    lines = [
        f"params        {_count(p['params'])}",
        f"tokens        {_count(p['tokens'])}  ({p['tokens_per_param']:.1f} per param; {optimal})",
        f"FLOPs         {p['flops']:.3g}  (6 x params x tokens) = {_num(p['pf_days'])} petaflop/s-days",
        *(f"{name} hours    {_num(hours)} at {p['mfu']:.0%} MFU  ({_num(p['days'][name])} days on {p['gpus']} GPU(s))"
          for name, hours in p["gpu_hours"].items()),
        f"store         {_num(p['store_gb_fp32'])} GB fp32, {_num(p['store_gb_bf16'])} GB bf16",
        (f"train         {_num(p['train_gb_fp32'])} GB fp32 (24 B/param), {_num(p['train_gb_mixed'])} GB mixed, "
         f"{_num(p['train_gb_bf16'])} GB bf16"),
        (f"per GPU       {_num(p['train_gb_per_gpu'])} GB {p['precision']} over {p['gpus']} GPU(s) with FSDP "
         f"({_num(p['model_states_gb_per_gpu'])} model states + {_num(p['activations_gb_per_gpu'])} activations)"),
    ]
    return "\n".join(lines)
