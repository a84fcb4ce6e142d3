"""A Llama-style decoder-only transformer: RMSNorm, rotary embeddings, SwiGLU, causal SDPA.

The architecture of Touvron et al. 2023 (LLaMA), written the way torchtitan writes it: one
`Block` per layer (so FSDP2 can shard each block as a unit), pre-norm residuals, grouped-query
attention when `n_kv_heads < n_heads`, untied input embedding and output head.

    from training.config import ModelConfig
    model = Transformer(ModelConfig(dim=64, n_layers=2, n_heads=4, vocab_size=8000))
    logits = model(tokens)                        # (batch, seq, vocab)
    model.flops_per_token(seq_len)                # for MFU, see the method's docstring
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from training.config import ModelConfig


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Zhang & Sennrich 2019): no mean subtraction, no bias."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 even when the block computes in bf16: the mean of squares is where
        # low precision hurts.
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rotary_tables(head_dim: int, max_seq_len: int, theta: float) -> torch.Tensor:
    """cos/sin of position * theta^(-2i/d) (Su et al. 2021), shape (max_seq_len, head_dim/2, 2)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return torch.stack([angles.cos(), angles.sin()], dim=-1).float()


def apply_rotary(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of x (batch, seq, heads, head_dim) by its position's angle."""
    pairs = x.float().unflatten(-1, (-1, 2))
    cos, sin = table[: x.shape[1], None, :, 0], table[: x.shape[1], None, :, 1]
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.dim // cfg.n_heads
        self.wq = nn.Linear(cfg.dim, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_heads * self.head_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        q = apply_rotary(self.wq(x).view(batch, seq, self.n_heads, self.head_dim), rope)
        k = apply_rotary(self.wk(x).view(batch, seq, self.n_kv_heads, self.head_dim), rope)
        v = self.wv(x).view(batch, seq, self.n_kv_heads, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                             enable_gqa=self.n_kv_heads != self.n_heads)
        return self.wo(out.transpose(1, 2).reshape(batch, seq, -1))


class FeedForward(nn.Module):
    """SwiGLU (Shazeer 2020): w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg.dim, cfg.ffn_hidden)
        self.checkpoint_activations = False

    def _forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), rope)
        return x + self.feed_forward(self.ffn_norm(x))

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        if self.checkpoint_activations and torch.is_grad_enabled():
            # Recompute the block in backward instead of keeping its activations.
            return checkpoint(self._forward, x, rope, use_reentrant=False)
        return self._forward(x, rope)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        # Not persistent: derived from the config, so checkpoints hold only learned weights.
        self.register_buffer("rope", rotary_tables(cfg.dim // cfg.n_heads, cfg.max_seq_len, cfg.rope_theta),
                             persistent=False)
        self.init_weights()

    def init_weights(self) -> None:
        """N(0, 0.02) everywhere; output projections of each residual branch scaled by
        1/sqrt(2 * n_layers) (GPT-2, Radford et al. 2019) so the residual stream does not grow."""
        std, out_std = 0.02, 0.02 / (2 * self.cfg.n_layers) ** 0.5
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, 0.0, out_std if name.endswith(("wo.weight", "w2.weight")) else std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, self.rope)
        return self.output(self.norm(h))

    def num_params(self, exclude_embedding: bool = False) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total - self.tok_embeddings.weight.numel() if exclude_embedding else total

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token = 6·N + 6·L·T·d.

        6·N: each non-embedding weight does one multiply-add (2 FLOPs) per token forward and
        two in backward (Kaplan et al. 2020, §2.1). N excludes the input embedding table (a
        lookup, not a matmul) but includes the output head, as torchtitan counts it.
        6·L·T·d: the attention scores and weighted sum, 12·L·T·d for a full T×T matrix
        (PaLM, Chowdhery et al. 2022, App. B), halved because the causal mask leaves half of it
        to compute (what flash/SDPA kernels do). MFU = tokens/s · this / device peak FLOP/s.
        """
        return 6 * self.num_params(exclude_embedding=True) + 6 * self.cfg.n_layers * seq_len * self.cfg.dim
