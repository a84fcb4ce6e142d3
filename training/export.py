"""`thresher export-hf RUN --output DIR`: a trained run as a Hugging Face Llama checkpoint, for
transformers, vLLM, lm-evaluation-harness and the rest of that ecosystem.

thresher's model is Llama's architecture with Meta's parameter names (training/model.py), so the
conversion is the one transformers applies to Meta's own checkpoints: rename every tensor, and
permute the rows of the query and key projections, because thresher rotates each (even, odd)
pair of a head's dimensions (Meta's complex-number rotary) while transformers rotates the first
half against the second (`rotate_half`). The output folder holds:

- `model.safetensors` (fp32, or `--dtype bf16|fp16`), `config.json` (`LlamaForCausalLM`) and
  `generation_config.json`;
- `tokenizer.json` (the run's sentencepiece BPE model rebuilt with `tokenizers`: same pieces,
  ids and merges; checked against sentencepiece on probe texts at export, which fails rather than
  write a tokenizer that splits differently), `tokenizer_config.json`, `special_tokens_map.json`
  and the original `tokenizer.model`: `<s>`/`</s>`/`<unk>` at ids 1/2/0 as thresher trains
  them, no BOS added. One difference, the convention of every Llama tokenizer in transformers:
  the literal strings `<s>`, `</s>` and `<unk>` in a text become those special tokens, where
  sentencepiece spells them out. thresher puts an EOS before every document (training/data.py), so score a text as
  thresher does by prepending `</s>` (`tokenizer.eos_token_id`).
- `thresher_export.json`: the run, the checkpoint, its step, and the model's sha256s.

The files are written to a temporary folder beside `--output` and renamed into place: a killed
export leaves no half-written folder behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from pipeline import storage
from pipeline.io import write_json
from training.run import TrainedRun

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def rotate_half_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder a q/k projection's rows per head from interleaved (even, odd) rotary pairs to
    first-half/second-half: row 2i -> i, row 2i+1 -> head_dim/2 + i."""
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.view(n_heads, head_dim // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """thresher's (Meta's) parameter names and rotary layout -> transformers' LlamaForCausalLM."""
    cfg = model.cfg
    src = model.state_dict()
    out = {"model.embed_tokens.weight": src["tok_embeddings.weight"], "model.norm.weight": src["norm.weight"],
           "lm_head.weight": src["output.weight"]}
    for i in range(cfg.n_layers):
        p, q = f"layers.{i}.", f"model.layers.{i}."
        out[q + "self_attn.q_proj.weight"] = rotate_half_rows(src[p + "attention.wq.weight"], cfg.n_heads)
        out[q + "self_attn.k_proj.weight"] = rotate_half_rows(src[p + "attention.wk.weight"], cfg.kv_heads)
        out[q + "self_attn.v_proj.weight"] = src[p + "attention.wv.weight"]
        out[q + "self_attn.o_proj.weight"] = src[p + "attention.wo.weight"]
        out[q + "mlp.gate_proj.weight"] = src[p + "feed_forward.w1.weight"]
        out[q + "mlp.up_proj.weight"] = src[p + "feed_forward.w3.weight"]
        out[q + "mlp.down_proj.weight"] = src[p + "feed_forward.w2.weight"]
        out[q + "input_layernorm.weight"] = src[p + "attention_norm.weight"]
        out[q + "post_attention_layernorm.weight"] = src[p + "ffn_norm.weight"]
    if len(out) != len(src):
        raise ValueError(f"export-hf: {len(src)} tensors in the model, {len(out)} mapped; the model changed shape")
    return out


def hf_config(run: TrainedRun, dtype: str) -> dict:
    cfg = run.model_config
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.dim, "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads, "head_dim": cfg.dim // cfg.n_heads,
        "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta, "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
        "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": run.bos_id, "eos_token_id": run.eos_id, "pad_token_id": None,
        "torch_dtype": {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[dtype],
    }


# Texts the exported tokenizer must encode exactly as sentencepiece does, or the export fails.
PROBES = ["The company reported a net profit of $1.2 billion, up 14% from 2023.", "  two leading spaces",
          " one", "tabs\tand\nnew lines\r\n", "a  b   c    d", "trailing  ", "Ünïcödé — “quotes” 日本語 ﬁ Ａ",
          "emoji 🙂 and <3 <b>tags</b>", "x", "", "0123456789 3.14159 1,000,000"]


def hf_tokenizer(sp):
    """sentencepiece BPE (identity normalisation, as thresher trains it) as a `tokenizers`
    tokenizer: the same vocabulary and ids, merges in piece order, "▁" for spaces and one
    prepended (sentencepiece's dummy prefix, added even before a leading space), byte fallback."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    merges = []
    for piece in pieces:  # a BPE model's ids follow its merge order
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        merges += sorted(splits, key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
    unk = pieces[sp.unk_id()]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    control = [i for i in range(len(pieces)) if sp.is_control(i) or sp.is_unknown(i)]
    tokenizer.add_special_tokens([AddedToken(pieces[i], special=True, normalized=False) for i in control])
    for text in PROBES:
        got, expected = tokenizer.encode(text, add_special_tokens=False).ids, sp.encode(text)
        if got != expected:
            raise ValueError(f"export-hf: the tokenizer cannot be reproduced for transformers (on {text!r}: "
                             f"{got[:8]} against sentencepiece's {expected[:8]}); train it with normalization: "
                             "identity, or use tokenizer.model with sentencepiece")
    return tokenizer


def tokenizer_files(run: TrainedRun, sp) -> dict[str, dict]:
    special = {name: sp.id_to_piece(i) for name, i in (("unk_token", sp.unk_id()), ("bos_token", sp.bos_id()),
                                                      ("eos_token", sp.eos_id())) if i >= 0}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **special, "pad_token": None, "add_bos_token": False,
              "add_eos_token": False, "model_max_length": run.model_config.max_seq_len,
              "clean_up_tokenization_spaces": False}
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def export_hf(run_dir: str, output: str | os.PathLike, dtype: str = "fp32") -> dict:
    """Write the run's newest intact checkpoint as a Hugging Face Llama folder at `output` (a
    folder, or a URL: written locally, then uploaded, `model.safetensors` last); the export record."""
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ValueError(f"--dtype: one of {', '.join(DTYPES)}")
    if not storage.is_local(output):
        if storage.listdir(output):
            raise ValueError(f"--output: {output} exists and is not empty")
        with tempfile.TemporaryDirectory(prefix="thresher-export-") as tmp:
            record = export_hf(run_dir, Path(tmp) / "hf", dtype)
            names = sorted(os.listdir(Path(tmp) / "hf"), key=lambda name: name == "model.safetensors")
            for name in names:
                fs, key = storage.filesystem(storage.join(os.fspath(output), name))
                fs.put_file(str(Path(tmp) / "hf" / name), key)
        return record
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"--output: {output} exists and is not empty")
    import sentencepiece as spm

    run = TrainedRun(run_dir, key="RUN")
    sp = spm.SentencePieceProcessor(model_file=str(storage.local_file(run.tokenizer_path)))
    model, step_dir = run.load_model()
    tensors = {name: t.to(DTYPES[dtype]).contiguous() for name, t in hf_state_dict(model).items()}
    step = int(storage.basename(step_dir).removeprefix("step-"))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        write_json(hf_config(run, dtype), tmp / "config.json")
        write_json({"bos_token_id": run.bos_id, "eos_token_id": run.eos_id,
                    "max_length": run.model_config.max_seq_len}, tmp / "generation_config.json")
        shutil.copyfile(storage.local_file(run.tokenizer_path), tmp / "tokenizer.model")
        hf_tokenizer(sp).save(str(tmp / "tokenizer.json"))
        for name, content in tokenizer_files(run, sp).items():
            write_json(content, tmp / name)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        record = {"run": storage.absolute(run.dir), "checkpoint": os.fspath(step_dir), "step": step, "dtype": dtype,
                  "parameters": sum(t.numel() for t in tensors.values()),
                  "sha256": {name: storage.sha256(tmp / name) for name in ("model.safetensors", "tokenizer.model")}}
        write_json(record, tmp / "thresher_export.json")
        if output.exists():
            output.rmdir()
        tmp.rename(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record
