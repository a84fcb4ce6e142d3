"""Tokenizer training: deterministic model bytes, the sentencepiece options reach the model,
long lines are cut, and a vocabulary the sample cannot fill is a ValueError naming vocab_size."""

from __future__ import annotations

import hashlib

import pytest
import sentencepiece as spm

from tokenization.stage import _model_type
from tokenization.train import TokenizerOptions, _cut, train_tokenizer


@pytest.fixture(scope="module")
def texts(shared_docs) -> list[str]:
    return [d.text for d in shared_docs[:120]] + [d.text for d in shared_docs[-10:]]


def test_same_sample_same_model_bytes_and_sha_file(texts, tmp_path):
    options = TokenizerOptions(vocab_size=800)
    a = train_tokenizer(texts, options, tmp_path / "a" / "tokenizer.model")
    b = train_tokenizer(texts, options, tmp_path / "b" / "tokenizer.model")
    model = (tmp_path / "a" / "tokenizer.model").read_bytes()
    assert a.sha256 == b.sha256 == hashlib.sha256(model).hexdigest()
    assert (tmp_path / "a" / "tokenizer.model.sha256").read_text() == f"{a.sha256}  tokenizer.model\n"
    assert (tmp_path / "a" / "tokenizer.vocab").read_text().count("\n") == 800
    assert (a.documents, a.eos_id, a.bos_id, a.vocab_size) == (len(texts), 2, 1, 800)
    assert _model_type(spm.SentencePieceProcessor(model_file=a.path).serialized_model_proto()) == "bpe"
    c = train_tokenizer(texts[20:], options, tmp_path / "c" / "tokenizer.model")
    assert c.sha256 != a.sha256


def test_options_reach_the_model(texts, tmp_path):
    options = TokenizerOptions(vocab_size=700, model_type="unigram", user_defined_symbols=["<fin>"], split_digits=True)
    info = train_tokenizer(texts, options, tmp_path / "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=info.path)
    pieces = sp.encode("Profit <fin> rose 2024 ₩", out_type=str)
    assert _model_type(sp.serialized_model_proto()) == "unigram"
    assert "<fin>" in pieces  # a user-defined symbol is one piece
    assert {"2", "0", "4"} <= set(pieces) and "2024" not in pieces  # split_digits
    assert "<0xE2>" in pieces  # byte fallback for a character outside the vocabulary
    text = "  Net income\trose 12.5%  to $1,200 mln ₩ (Reuters)\n\nsecond  paragraph"
    assert sp.decode(sp.encode(text)) == text  # identity normalisation keeps every character


def test_too_large_vocabulary_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=5000"):
        train_tokenizer(["a tiny sample of text"] * 3, TokenizerOptions(vocab_size=5000), tmp_path / "t.model")


def test_empty_sample_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="tokenizer training"):
        train_tokenizer([], TokenizerOptions(vocab_size=300), tmp_path / "t.model")


def test_long_lines_are_cut_at_spaces_within_the_byte_limit():
    line = " ".join(["word"] * 100) + " " + "x" * 30
    pieces = list(_cut(line, 20))
    assert all(len(p.encode()) <= 20 for p in pieces)
    assert "".join(pieces).replace(" ", "") == line.replace(" ", "")
    assert list(_cut("short line", 20)) == ["short line"]
