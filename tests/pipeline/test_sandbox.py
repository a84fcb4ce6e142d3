"""The sandbox: results, time limits, crashes, and recovery after each."""

import os
import time

import pytest

from pipeline.sandbox import Sandbox, SandboxCrashed, SandboxTimeout


def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def spin(seconds: float) -> str:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return "done"


def crash(_: object) -> None:
    os._exit(3)


def fail(_: object) -> None:
    raise KeyError("boom")


def test_result_timeout_and_recovery():
    box = Sandbox("tests.pipeline.test_sandbox:sleepy")
    try:
        assert box.call(0.0, timeout=30) == "woke"
        start = time.monotonic()
        with pytest.raises(SandboxTimeout):
            box.call(60.0, timeout=0.5)
        assert time.monotonic() - start < 10  # a child that hangs idle is stopped by the wall backstop
        assert box.call(0.0, timeout=30) == "woke"  # a fresh child took over
    finally:
        box.close()


def test_limit_counts_cpu_time_so_load_does_not_change_the_verdict():
    box = Sandbox("tests.pipeline.test_sandbox:spin")
    try:
        assert box.call(0.2, timeout=5) == "done"  # well within its CPU budget, whatever the load
        start = time.monotonic()
        with pytest.raises(SandboxTimeout):
            box.call(60.0, timeout=0.5)  # a busy loop is stopped after 0.5 s of CPU
        assert time.monotonic() - start < 5.0 * 10
    finally:
        box.close()


def test_crash_is_reported_and_the_next_call_restarts():
    box = Sandbox("tests.pipeline.test_sandbox:crash")
    try:
        with pytest.raises(SandboxCrashed, match="code 3"):
            box.call(None, timeout=30)
        with pytest.raises(SandboxCrashed):
            box.call(None, timeout=30)
    finally:
        box.close()


def test_exception_in_child_is_raised_with_its_type():
    box = Sandbox("tests.pipeline.test_sandbox:fail")
    try:
        with pytest.raises(RuntimeError, match="KeyError"):
            box.call(None, timeout=30)
    finally:
        box.close()
