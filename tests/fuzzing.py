"""Hypothesis settings and the target registry shared by the fuzz tests and `bench/fuzz.py`.

A fuzz target is a strategy and a check: the check raises (an assertion or any uncaught
exception) when the input breaks the code's contract. Each fuzz test module declares its targets
in `TARGETS`, and its tests run them under `CI_SETTINGS`: seeded (derandomized), no example
database, a modest `max_examples`, so every fuzz module runs in seconds. `bench/fuzz.py` runs the
same targets with fresh seeds and a time budget.

    @CI_SETTINGS
    @given(some_strategy())
    def test_reader_never_raises(value):
        check_reader(value)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# The fuzz tests run in CI: the same examples on every run (derandomize), nothing written to
# .hypothesis/, no per-example deadline (a shared 2-core machine makes timings noisy).
CI_SETTINGS = settings(
    max_examples=int(os.environ.get("THRESHER_FUZZ_EXAMPLES", "150")),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@dataclasses.dataclass(frozen=True)
class Target:
    """A strategy of inputs and the check each input must pass."""

    strategy: st.SearchStrategy
    check: Callable[[object], None]


class Scratch:
    """One temporary folder per process where the file-format targets write their inputs
    (overwritten by each example: readers take a path, not bytes)."""

    _dir: tempfile.TemporaryDirectory | None = None

    @classmethod
    def write(cls, name: str, data: bytes) -> Path:
        if cls._dir is None:
            cls._dir = tempfile.TemporaryDirectory(prefix="thresher-fuzz-")
        path = Path(cls._dir.name) / name
        path.write_bytes(data)
        return path
