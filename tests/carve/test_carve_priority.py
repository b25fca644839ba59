"""The carve's verify and retrain yield the CPU to serving: run at a raised nice value on a
thread of their own, never the caller's."""

from __future__ import annotations

import os
import threading

import pytest

from carveout.carve.priority import at_lower_priority, niceness
from carveout.core import InvalidInput


def _nice_here() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's nice value


def test_work_runs_at_a_raised_nice_value_and_the_caller_keeps_its_own() -> None:
    before = _nice_here()
    seen = at_lower_priority(lambda: (_nice_here(), threading.current_thread().name), 7)
    assert seen == (min(19, before + 7), "carve-low-priority")
    assert _nice_here() == before


def test_the_result_and_the_error_reach_the_caller() -> None:
    assert at_lower_priority(lambda: [1, 2], 3) == [1, 2]

    def fails() -> None:
        raise ValueError("verify found 2 mismatching chunks")

    with pytest.raises(ValueError, match="2 mismatching chunks"):
        at_lower_priority(fails, 3)


def test_zero_runs_inline_and_the_environment_sets_the_increment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert at_lower_priority(threading.current_thread, 0) is threading.current_thread()
    monkeypatch.setenv("CARVEOUT_CARVE_NICE", "0")
    assert niceness() == 0
    assert at_lower_priority(threading.current_thread) is threading.current_thread()
    monkeypatch.setenv("CARVEOUT_CARVE_NICE", "19")
    assert niceness() == 19
    for bad in ("25", "-3", "lots"):
        monkeypatch.setenv("CARVEOUT_CARVE_NICE", bad)
        with pytest.raises(InvalidInput, match="CARVEOUT_CARVE_NICE must be a whole number"):
            niceness()
