"""The dedup presets load, and their stages build and pass their checks: configs/dedup.yaml,
configs/decontaminate.yaml (eval sets in ../shared/data) and configs/incremental-dedup.yaml
(one index folder for url_dedup, exact_dedup and the MinHash stages)."""

from __future__ import annotations

import pytest

from dedup.index_minhash import minhash_index
from pipeline.config import load_config
from tests.conftest import REPO, shared_path


@pytest.mark.parametrize("name", ["dedup", "decontaminate", "incremental-dedup"])
def test_preset_builds_and_checks(name, monkeypatch, tmp_path):
    shared_path()
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("DEDUP_INDEX", str(tmp_path / "index"))
    config = load_config(REPO / "configs" / f"{name}.yaml")
    stages = config.build_stages()
    for stage in stages:
        stage.check()
    if name == "incremental-dedup":
        indexed = [s.name for s in stages if getattr(s.params, "index", None) == str(tmp_path / "index")]
        assert indexed == ["url_dedup", "exact_dedup", "minhash_signatures"]
        assert minhash_index(stages[4].params).folder == str(tmp_path / "index" / "minhash")
