"""Train a sentencepiece tokenizer (BPE or unigram) on a deterministic sample of documents.

The sample (see `tokenization.sample`) is split into lines, lines longer than
`max_sentence_bytes` are cut at spaces, and the lines are fed to sentencepiece in the
sample's order with sentencepiece's own sampling and shuffling switched off, so the same
documents give the same model bytes. The thread count is fixed by the options (default 1)
because sentencepiece's result depends on it. Defaults follow LLaMA-style pre-training
tokenizers: identity normalisation, whitespace kept, digits split, byte fallback, so every
document decodes back to exactly its text.

    from tokenization.train import TokenizerOptions, train_tokenizer
    info = train_tokenizer(texts, TokenizerOptions(vocab_size=8000), "out/tok/tokenizer.model")
    info.sha256, info.vocab_size
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipeline import storage
from pipeline.io import write_bytes
from pipeline.stage import StageParams


class TokenizerOptions(StageParams):
    """How to train the tokenizer and how much text to sample for it."""

    vocab_size: int = Field(32000, ge=300, le=1 << 20, description="pieces in the vocabulary")
    model_type: Literal["bpe", "unigram"] = "bpe"
    byte_fallback: bool = Field(True, description="unknown characters become byte pieces")
    character_coverage: float = Field(0.9995, gt=0, le=1, description="share of characters covered by the vocab")
    user_defined_symbols: list[str] = Field(default_factory=list, description="pieces never split")
    split_digits: bool = Field(True, description="every digit is its own piece (numbers in financial text)")
    normalization: Literal["identity", "nfkc", "nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf"] = "identity"
    max_sample_bytes: int = Field(256 << 20, gt=0, description="text bytes sampled from the documents")
    max_sentences: int = Field(20_000_000, gt=0, description="lines fed to sentencepiece at most")
    max_sentence_bytes: int = Field(16384, ge=256, description="longer lines are cut at spaces")
    num_threads: int = Field(1, gt=0, description="trainer threads; the model depends on it, keep it fixed")


@dataclasses.dataclass(frozen=True)
class TokenizerInfo:
    path: str
    sha256: str
    vocab_size: int
    model_type: str
    eos_id: int
    bos_id: int
    documents: int = 0
    sample_bytes: int = 0
    sentences: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _cut(line: str, max_bytes: int) -> Iterator[str]:
    """`line` in pieces of at most `max_bytes` UTF-8 bytes, cut at spaces where possible."""
    if len(line.encode("utf-8")) <= max_bytes:
        yield line
        return
    piece, size = [], 0
    for word in line.split(" "):
        n = len(word.encode("utf-8")) + 1
        if piece and size + n > max_bytes:
            yield " ".join(piece)
            piece, size = [], 0
        # A single word longer than the limit is cut by characters (a run of digits, a URL).
        while n > max_bytes:
            head = word.encode("utf-8")[: max_bytes - 1].decode("utf-8", "ignore")
            yield head
            word = word[len(head):]
            n = len(word.encode("utf-8")) + 1
        piece.append(word)
        size += n
    if piece:
        yield " ".join(piece)


class _Sentences:
    """The sample's documents as training lines, counting what it feeds."""

    def __init__(self, texts: Iterable[str], options: TokenizerOptions):
        self.texts, self.options = texts, options
        self.documents = self.bytes = self.sentences = 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.documents += 1
            self.bytes += len(text.encode("utf-8"))
            for line in text.split("\n"):
                if not line.strip():
                    continue
                for piece in _cut(line, self.options.max_sentence_bytes):
                    if self.sentences >= self.options.max_sentences:
                        return
                    self.sentences += 1
                    yield piece


def trainer_arguments(options: TokenizerOptions) -> dict:
    """sentencepiece trainer flags for `options` (sampling and shuffling off: our sample
    is already deterministic and bounded)."""
    return dict(
        vocab_size=options.vocab_size, model_type=options.model_type, byte_fallback=options.byte_fallback,
        character_coverage=options.character_coverage, split_digits=options.split_digits,
        user_defined_symbols=list(options.user_defined_symbols), normalization_rule_name=options.normalization,
        remove_extra_whitespaces=options.normalization != "identity", allow_whitespace_only_pieces=True,
        max_sentence_length=options.max_sentence_bytes, input_sentence_size=0, shuffle_input_sentence=False,
        num_threads=options.num_threads, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )


def train_tokenizer(texts: Iterable[str], options: TokenizerOptions, model_path: str | Path) -> TokenizerInfo:
    """Train on `texts` (in order) and write `model_path`, `model_path.sha256` (sha256sum
    format) and a `.vocab` listing (piece, score)."""
    import sentencepiece as spm

    sentences = _Sentences(texts, options)
    buffer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buffer,
                                       **trainer_arguments(options))
    except RuntimeError as error:
        raise ValueError(f"tokenizer training failed (check vocab_size={options.vocab_size} against the "
                         f"sample: {sentences.sentences} lines): {str(error).strip().splitlines()[-1]}") from None
    if sentences.sentences == 0:
        raise ValueError("tokenizer training: the sample has no text; check the documents or inputs")
    model = buffer.getvalue()
    path = os.fspath(model_path)
    write_bytes(model, path)
    sha = hashlib.sha256(model).hexdigest()
    write_bytes(f"{sha}  {storage.basename(path)}\n".encode(), f"{path}.sha256")
    processor = spm.SentencePieceProcessor(model_proto=model)
    vocab = "".join(f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
                    for i in range(processor.get_piece_size()))
    write_bytes(vocab.encode("utf-8"), posixpath.splitext(path)[0] + ".vocab")
    return TokenizerInfo(str(path), sha, processor.get_piece_size(), options.model_type, processor.eos_id(),
                         processor.bos_id(), sentences.documents, sentences.bytes, sentences.sentences)
