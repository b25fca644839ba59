"""Wall and CPU seconds of a bench step, best of several rounds.

On a shared machine wall seconds swing with everyone else's load; CPU seconds (this process, all
its threads, and the child processes it waited for: zstd, tar, pg_dump, pg_restore) are the
steadier figure of the work done. A PostgreSQL server's own processes are in neither."""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Best:
    """The fewest wall seconds and the fewest CPU seconds seen over a step's rounds."""

    wall: float = math.inf
    cpu: float = math.inf

    def time(self, step: Callable[[], T]) -> T:
        # The dirty pages of the steps before are written out first, untimed: otherwise a step
        # pays for the writeback of the one before it (the baselines, which do not fsync, leave
        # the most). CREATE DATABASE took 0.23-0.32 s right after other steps, 0.09-0.15 s
        # after a sync.
        os.sync()
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = step()
        self.wall = min(self.wall, time.perf_counter() - wall)
        self.cpu = min(self.cpu, cpu_seconds() - cpu)
        return result
