"""Open-loop HTTP load: requests sent at a fixed rate whatever the server does, latency per request.

A closed loop (loadgen.py) waits for each answer before sending the next, so a slow server is
sent less and its stalls hide (coordinated omission). Here request i is due at start + i / rate;
its latency runs from that due time, not from when it was actually sent, so time spent queued
behind a slow answer — in the client or the server — counts against the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

from carveout.bench.loadgen import TIMEOUT_S, Call, Measurement, _CpuSample, send
from carveout.bench.stall_notes import LAG_NOTED_MS, client_collections

MAX_CONNECTIONS = 64  # enough that a stall queues requests on the server, not in the client
SLOWEST = 10
LATE_SENDS_KEPT = 50


@dataclass(frozen=True)
class OpenLoopResult:
    measurement: Measurement
    # (seconds after the warm-up that the request was due, its latency in ms), slowest first:
    # one stall shows as neighbouring due times, a slow path as slow requests spread out.
    slowest: list[tuple[float, float]]
    # The client's own part in a stall: measured requests sent LAG_NOTED_MS or more after they
    # were due, (due s after the warm-up, ms late; the first LATE_SENDS_KEPT), and this
    # process's collections of 5 ms or more, (s after the warm-up, ms, generation).
    late_sends: list[tuple[float, float]] = field(default_factory=list)
    client_gc: list[tuple[float, float, int]] = field(default_factory=list)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    last_end: float = 0.0


def run_open_loop(
    base_url: str,
    calls: Sequence[Call],
    *,
    rate: float,
    seconds: float,
    warmup: float,
    server_pid: int | None = None,
) -> OpenLoopResult:
    """Send `calls` round-robin at `rate` per second for warmup + seconds; measure the requests
    due after the warm-up (each is awaited to the end, so a slow one still counts)."""
    if not calls:
        raise ValueError("no requests to send")
    if rate <= 0 or seconds <= 0 or warmup < 0:
        raise ValueError("rate and seconds must be positive, warm-up not negative")
    return asyncio.run(_drive(base_url, calls, rate, seconds, warmup, server_pid))


async def _drive(
    base_url: str,
    calls: Sequence[Call],
    rate: float,
    seconds: float,
    warmup: float,
    server_pid: int | None,
) -> OpenLoopResult:
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    tally = _Tally()
    total = int((warmup + seconds) * rate)
    first_measured = int(warmup * rate)
    late_sends: list[tuple[float, float]] = []
    with client_collections() as collections:
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=TIMEOUT_S) as client:
            start = time.perf_counter()
            measured_wall = time.time() + warmup
            tasks: list[asyncio.Task[None]] = []
            cpu_start: _CpuSample | None = None
            for i in range(total):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if i == first_measured:
                    cpu_start = _CpuSample.take(server_pid)
                call = calls[i % len(calls)]
                measured = i >= first_measured
                late_ms = (time.perf_counter() - due) * 1000
                if measured and late_ms >= LAG_NOTED_MS and len(late_sends) < LATE_SENDS_KEPT:
                    late_sends.append((round(i / rate - warmup, 3), round(late_ms, 2)))
                task = _one(client, call, due, i / rate, measured, tally)
                tasks.append(asyncio.create_task(task))
            await asyncio.gather(*tasks)
            cpu_end = _CpuSample.take(server_pid)
    client_gc = [
        (round(at - measured_wall, 3), ms, gen)
        for at, ms, gen in collections
        if at >= measured_wall
    ]
    client_cpu, server_cpu = cpu_start.cores_until(cpu_end) if cpu_start else (0.0, 0.0)
    lat = np.asarray(tally.latencies, dtype=np.float64) * 1000.0
    p50, p90, p99 = (float(x) for x in np.percentile(lat, [50, 90, 99])) if lat.size else (0, 0, 0)
    slowest = sorted(zip(tally.due, lat.tolist(), strict=True), key=lambda t: -t[1])[:SLOWEST]
    measurement = Measurement(
        requests=int(lat.size),
        errors=tally.errors,
        seconds=seconds,
        items_per_request=1,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(lat.mean()) if lat.size else 0.0,
        max_ms=float(lat.max()) if lat.size else 0.0,
        first_error=tally.first_error,
        client_cpu=client_cpu,
        server_cpu=server_cpu,
    )
    return OpenLoopResult(
        measurement,
        [(round(d - warmup, 3), round(ms, 2)) for d, ms in slowest],
        late_sends,
        client_gc,
    )


async def _one(
    client: httpx.AsyncClient, call: Call, due: float, offset: float, measured: bool, tally: _Tally
) -> None:
    error = await send(client, call)
    end = time.perf_counter()
    if not measured:
        return
    if error:
        # A failed request is not a fast one: it counts as an error, not as a latency.
        tally.errors += 1
        tally.first_error = tally.first_error or error[:500]
        return
    tally.latencies.append(end - due)
    tally.due.append(offset)
    tally.last_end = max(tally.last_end, end)
