"""The Llama-style model: causality, rotary relative positions, presets, FLOPs accounting."""

from __future__ import annotations

import pytest
import torch

from training.config import PRESETS, ModelConfig
from training.model import Transformer, apply_rotary, rotary_tables


def tiny(**changes) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**{"preset": "tiny", "vocab_size": 50, "max_seq_len": 32, **changes}))


def test_logits_have_the_vocabulary_and_depend_only_on_the_past():
    model = tiny()
    tokens = torch.randint(0, 50, (2, 16))
    logits = model(tokens)
    assert logits.shape == (2, 16, 50)
    changed = tokens.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 50
    after = model(changed)
    assert torch.allclose(logits[:, :10], after[:, :10], atol=1e-6)
    assert not torch.allclose(logits[:, 10:], after[:, 10:])


def test_rotary_scores_depend_only_on_the_distance_between_positions():
    table = rotary_tables(head_dim=8, max_seq_len=16, theta=10000.0)
    q, k = torch.randn(8), torch.randn(8)

    def score(i, j):
        seq = torch.zeros(1, 16, 1, 8)
        seq[0, i, 0], seq[0, j, 0] = q, k
        rotated = apply_rotary(seq, table)[0, :, 0]
        return rotated[i] @ rotated[j]

    assert torch.allclose(score(3, 1), score(12, 10), atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_grouped_query_attention_and_activation_checkpointing_match_gradients():
    model = tiny(n_kv_heads=2)
    assert model.layers[0].attention.wk.weight.shape == (2 * 16, 64)
    tokens = torch.randint(0, 50, (2, 12))
    model(tokens).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for block in model.layers:
        block.checkpoint_activations = True
    model(tokens).sum().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(plain, model.parameters()))


@pytest.mark.parametrize("preset, low, high", [("125m", 110e6, 140e6), ("350m", 330e6, 400e6), ("1b", 0.95e9, 1.2e9)])
def test_presets_have_their_nominal_size(preset, low, high):
    with torch.device("meta"):
        model = Transformer(ModelConfig(preset=preset, vocab_size=32000))
    assert low < model.num_params() < high
    assert model.cfg.dim == PRESETS[preset]["dim"]


def test_flops_per_token_is_six_n_plus_causal_attention():
    model = tiny()
    n = sum(p.numel() for name, p in model.named_parameters() if name != "tok_embeddings.weight")
    assert model.num_params(exclude_embedding=True) == n
    assert model.flops_per_token(32) == 6 * n + 6 * 2 * 32 * 64


def test_bad_head_layout_is_rejected_naming_the_rule():
    with pytest.raises(ValueError, match="dim must be a multiple of n_heads"):
        ModelConfig(dim=60, n_heads=8)


def test_fixed_seed_smoke_run_reproduces_its_losses():
    """The golden run a refactor of the model, init or optimizer must reproduce (STYLE.md #11):
    the tiny preset learns `next = token + 1 (mod 64)` for 10 AdamW steps from seed 0."""
    from training.config import TrainOptions
    from training.train import build_optimizer

    model = tiny(vocab_size=64)
    optimizer, scheduler = build_optimizer(model, TrainOptions(steps=10, warmup_steps=2, lr=3e-3))
    generator = torch.Generator().manual_seed(0)
    tokens = (torch.randint(0, 64, (10, 4, 1), generator=generator) + torch.arange(33)) % 64
    losses = []
    for batch in tokens:
        loss = torch.nn.functional.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(4.182491, abs=1e-4)
    assert losses[-1] == pytest.approx(2.654540, abs=1e-4)
