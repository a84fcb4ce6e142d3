"""Shared test fixtures: where the real evaluation data lives (../shared/data beside the
checkout, or $THRESHER_SHARED_DATA). A test that needs it fails under CI (CI=true) when the
data is missing, and is skipped elsewhere. Local Dask clusters of 1 and 2 worker processes
are started once per test session and shared (`client` is the 2-worker one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.cluster import open_client

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def shared_path(*parts: str) -> Path:
    """Path under the shared data folder; fails (CI) or skips (elsewhere) when missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"shared data not found: {path} (set THRESHER_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def client1():
    with open_client(workers=1) as client:
        yield client


@pytest.fixture(scope="session")
def client2():
    with open_client(workers=2) as client:
        yield client


@pytest.fixture(scope="session")
def client(client2):
    return client2
