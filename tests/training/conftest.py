"""Fixtures for the trainer's tests: small real shards made by `thresher run` with the tokenize
stage (tests/training/shard_builder.py), built once per session from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.shard_builder import build_shards


@pytest.fixture(scope="session")
def manifest_path(tmp_path_factory) -> Path:
    return build_shards(tmp_path_factory.mktemp("shards"))
