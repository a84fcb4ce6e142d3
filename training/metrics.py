"""Training logs: loss, tokens/s, MFU, peak memory, per-domain validation perplexity.

Rank 0 prints a line every `log.every` steps and appends one JSON object per step and per
validation to `OUTPUT/metrics.jsonl` (`{"step": 10, "loss": ...}` / `{"step": 10, "eval":
{"financial": {"loss": ..., "ppl": ...}}}`); `OUTPUT/run.json` records the model size, how many
parameters each rank holds (FSDP shards them), the world size and accumulation steps, and
`OUTPUT/config.yaml` the resolved config.
MFU = tokens/s x model FLOPs per token (Transformer.flops_per_token) / (ranks x device peak);
the peak is `train.peak_tflops`, else the bf16 dense peak of a known GPU, else unknown (CPU).
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import torch
import torch.distributed as dist

from pipeline.io import write_bytes, write_json

# bf16 dense tensor-core peaks, FLOP/s (NVIDIA data sheets).
GPU_PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def device_peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in GPU_PEAK_FLOPS.items() if key in name), None)
    return None


def peak_memory_gib(device: torch.device) -> float:
    """GPU: peak allocated by this rank; CPU: this process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def local_numel(model: torch.nn.Module) -> int:
    """Parameters this rank stores: its shard of every FSDP (DTensor) parameter."""
    return sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())


class MetricLogger:
    def __init__(self, out: Path, config, model, env, grad_accum: int):
        self.main = env.rank == 0
        self.out, self.device, self.every = out, env.device, config.log.every
        self.tokens_per_step = config.train.global_batch_size * config.data.seq_len
        self.flops_per_token = model.flops_per_token(config.data.seq_len)
        peak = device_peak_flops(env.device, config.train.peak_tflops)
        self.peak_total = peak * env.world_size if peak else None
        self.window: list[tuple[float, float]] = []  # (loss, seconds) since the last printed line
        self.evals: list[tuple[int, dict]] = []
        self.last: dict = {}
        held = [0] * env.world_size
        dist.all_gather_object(held, local_numel(model))
        run = {"params": model.num_params(), "non_embedding_params": model.num_params(exclude_embedding=True),
               "params_per_rank": held, "world_size": env.world_size, "grad_accum_steps": grad_accum,
               "tokens_per_step": self.tokens_per_step, "flops_per_token": self.flops_per_token,
               "device": str(env.device), "config": config.to_dict()}
        if self.main:
            out.mkdir(parents=True, exist_ok=True)
            write_json(run, out / "run.json")
            write_bytes(config.to_yaml().encode(), out / "config.yaml")
            print(f"model {run['params'] / 1e6:.2f}M params ({run['non_embedding_params'] / 1e6:.2f}M "
                  f"non-embedding), held per rank {held}; {env.world_size} rank(s) x {grad_accum} "
                  f"accumulation step(s), {self.tokens_per_step} tokens/step on {env.device}", flush=True)

    @property
    def path(self) -> Path:
        return self.out / "metrics.jsonl"

    def _write(self, record: dict) -> None:
        if self.main:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def reset(self) -> None:
        if self.main:
            self.path.unlink(missing_ok=True)

    def note(self, message: str) -> None:
        if self.main:
            print(message, flush=True)

    def start_step(self) -> None:
        self._t0 = time.perf_counter()

    def step(self, step: int, loss: float, grad_norm: float, lr: float) -> None:
        seconds = time.perf_counter() - self._t0
        tokens_per_s = self.tokens_per_step / seconds
        mfu = tokens_per_s * self.flops_per_token / self.peak_total if self.peak_total else None
        self.last = {"step": step, "loss": loss, "grad_norm": grad_norm, "lr": lr, "tokens_per_s": tokens_per_s,
                     "mfu": mfu, "peak_mem_gib": peak_memory_gib(self.device)}
        self._write(self.last)
        self.window.append((loss, seconds))
        if step % self.every == 0:
            mean_loss = sum(value for value, _ in self.window) / len(self.window)
            rate = self.tokens_per_step * len(self.window) / sum(s for _, s in self.window)
            mfu_text = f"  mfu {100 * rate * self.flops_per_token / self.peak_total:.1f}%" if self.peak_total else ""
            self.note(f"step {step:>6}  loss {mean_loss:.4f}  lr {lr:.2e}  grad_norm {grad_norm:.3f}  "
                      f"tokens/s {rate:,.0f}{mfu_text}  peak_mem {self.last['peak_mem_gib']:.2f} GiB")
            self.window = []

    def eval(self, step: int, results: dict) -> None:
        self.evals.append((step, results))
        self._write({"step": step, "eval": results})
        text = "  ".join(f"{name} loss {r['loss']:.4f} ppl {r['ppl']:.2f}" for name, r in results.items())
        self.note(f"valid  step {step:>6}  {text}")

    def _first_eval(self) -> tuple[int, dict] | None:
        """The run's first validation (step 0, before any training), also when resumed since."""
        path = self.path
        if self.main and path.is_file():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if "eval" in record:
                    return record["step"], record["eval"]
        return self.evals[0] if self.evals else None

    def finish(self) -> dict:
        first = self._first_eval()
        summary = {"last_step": self.last, "valid_before": first[1] if first else None,
                   "valid_after": self.evals[-1][1] if self.evals else None}
        if self.main and first and self.evals:
            self.note(f"per-domain validation perplexity, step {first[0]} -> step {self.evals[-1][0]}:")
            for name, after in self.evals[-1][1].items():
                before = first[1].get(name, {}).get("ppl", float("nan"))
                self.note(f"  {name:<16} {before:>10.2f} -> {after['ppl']:>10.2f}")
        return summary
