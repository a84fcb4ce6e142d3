"""Loading manifest.json: the contract's structure is checked with messages naming the key,
missing shard files are found, and `verify` compares shards with the manifest."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tokenization.indexed import IndexedWriter
from tokenization.manifest import load_manifest, write_manifest


def make(tmp_path, tokens_in_manifest: int = 4) -> dict:
    with IndexedWriter(tmp_path / "fin" / "shard-00000", dtype=np.uint16) as w:
        w.add_document([5, 6, 2])
        w.add_document([2])
    manifest = {"format": "megatron-indexed", "format_version": 1,
                "tokenizer": {"path": str(tmp_path / "tokenizer.model"), "sha256": "a" * 64, "vocab_size": 300,
                              "model_type": "bpe"},
                "vocab_size": 300, "dtype": "uint16", "eos_id": 2, "bos_id": 1, "mixture": {"fin": 1.0},
                "domains": {"fin": {"documents": 2, "tokens": tokens_in_manifest, "weight": 1.0,
                                    "shards": [{"prefix": "fin/shard-00000", "documents": 2,
                                                "tokens": tokens_in_manifest}],
                                    "valid": None}}}
    write_manifest(manifest, tmp_path)
    return manifest


def test_load_open_and_verify(tmp_path):
    make(tmp_path)
    (tmp_path / "tokenizer.model").write_bytes(b"x")
    m = load_manifest(tmp_path)
    m.verify()
    assert m.weights == {"fin": 1.0} and m.open_valid("fin") is None
    assert [ds[0].tolist() for ds in m.open_shards("fin")] == [[5, 6, 2]]
    assert m.tokenizer_path == tmp_path / "tokenizer.model"
    with pytest.raises(ValueError, match="domain 'gen' is not in"):
        m.open_shards("gen")


def test_moved_folder_finds_the_tokenizer_beside_the_manifest(tmp_path):
    make(tmp_path)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    raw["tokenizer"]["path"] = "/nowhere/tokenizer.model"
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    assert load_manifest(tmp_path / "manifest.json").tokenizer_path == tmp_path / "tokenizer.model"


def test_structure_errors_name_the_key(tmp_path):
    make(tmp_path)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    raw["dtype"] = "float32"
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=re.escape("manifest.json: dtype:")):
        load_manifest(tmp_path)
    with pytest.raises(ValueError, match="no shard manifest here"):
        load_manifest(tmp_path / "missing")


def test_missing_shard_file_and_count_mismatch(tmp_path):
    make(tmp_path, tokens_in_manifest=5)
    with pytest.raises(ValueError, match="holds 2 documents / 4 tokens of uint16; the manifest says 2 / 5"):
        load_manifest(tmp_path).verify()
    (tmp_path / "fin" / "shard-00000.idx").unlink()
    with pytest.raises(ValueError, match=re.escape("domains.fin: fin/shard-00000.idx is missing")):
        load_manifest(tmp_path)
