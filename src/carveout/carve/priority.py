"""The carve's bulk work at a lower CPU priority than the cell it carves keeps serving.

On a small machine the carve's verify (hashing every row of J on both sides) and retrain
compete with the server for the same cores, and every jurisdiction's requests queue behind
them. These phases have no deadline, so they run on a thread of their own with a raised nice
value: the scheduler gives the server first claim. Only phases that hold no lock a writer waits
for belong here (a slowed-down holder would stall writers for longer); the cutover, whose
pause is the number that matters, never runs here.

On Linux the nice value is per thread, so the rest of the process (a server in the same
process, the progress display) keeps its priority; elsewhere it is per process and stays raised.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

from carveout.core import InvalidInput

T = TypeVar("T")

# nice(1)'s default increment. CARVEOUT_CARVE_NICE=0 turns it off (for comparison runs).
DEFAULT_NICE = 10


def niceness() -> int:
    raw = os.environ.get("CARVEOUT_CARVE_NICE", "").strip()
    if not raw:
        return DEFAULT_NICE
    if not raw.isdigit() or int(raw) > 19:
        raise InvalidInput(f"CARVEOUT_CARVE_NICE must be a whole number from 0 to 19, got {raw!r}")
    return int(raw)


def at_lower_priority(work: Callable[[], T], increment: int | None = None) -> T:
    """`work()` on a daemon thread whose nice value is raised by `increment`; its result or
    its exception. A daemon, so an interrupted caller exits without waiting for it (the carve
    resumes from its last saved progress, as after a kill)."""
    step = niceness() if increment is None else increment
    if step <= 0:
        return work()
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            os.nice(step)
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            error.append(exc)

    thread = threading.Thread(target=body, name="carve-low-priority", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
