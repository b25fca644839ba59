"""Latency and throughput of the client's requests inside time windows (the cutover, the carve)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Request = tuple[float, float, bool, int, int]  # start, end, moving side, kind, HTTP status


@dataclass(frozen=True)
class WindowStats:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def as_json(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": round(self.p50_ms, 1),
            "p99_ms": round(self.p99_ms, 1),
            "max_ms": round(self.max_ms, 1),
        }


def overlapping(
    requests: list[Request], windows: list[tuple[float, float]], moving: bool
) -> list[Request]:
    """The side's requests that were in flight at any moment of any window."""
    return [
        r for r in requests if r[2] is moving and any(r[0] < b and r[1] > a for a, b in windows)
    ]


def started_in(requests: list[Request], start: float, end: float, moving: bool) -> list[Request]:
    return [r for r in requests if r[2] is moving and start <= r[0] < end]


def stats(requests: list[Request]) -> WindowStats:
    ok = [r for r in requests if 200 <= r[4] < 300]
    lat = np.asarray([(r[1] - r[0]) * 1000.0 for r in ok], dtype=np.float64)
    if lat.size == 0:
        return WindowStats(len(requests), len(requests), 0.0, 0.0, 0.0)
    p50, p99 = (float(x) for x in np.percentile(lat, [50, 99]))
    return WindowStats(len(requests), len(requests) - len(ok), p50, p99, float(lat.max()))


def rate(requests: list[Request], start: float, end: float) -> float:
    """Acknowledged requests per second among those that started in [start, end)."""
    n = sum(1 for r in requests if start <= r[0] < end and 200 <= r[4] < 300)
    return n / (end - start) if end > start else 0.0


def write_rate(
    requests: list[Request], start: float, end: float, rows_per_kind: list[int]
) -> float:
    """Acknowledged writes (rows the ledger checks: each event of a batch is one) per second
    among the requests that started in [start, end)."""
    n = sum(rows_per_kind[r[3]] for r in requests if start <= r[0] < end and 200 <= r[4] < 300)
    return n / (end - start) if end > start else 0.0
