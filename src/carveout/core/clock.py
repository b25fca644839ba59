"""Time as integer Unix milliseconds: identical in SQLite and PostgreSQL, so checksums agree."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000
