"""The load generator: C keep-alive HTTP/1.1 connections in a closed loop, latency per request."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

TICK_S = 0.2
TIMEOUT_S = 60.0

Tick = Callable[[float], None]
"""tick(seconds_elapsed) while a load runs, warm-up included."""


@dataclass(frozen=True)
class Call:
    """One prepared request: bodies are encoded up front so the client spends no time on JSON."""

    method: str
    path: str
    headers: dict[str, str]
    content: bytes | None = None


@dataclass(frozen=True)
class Measurement:
    requests: int
    errors: int
    seconds: float
    items_per_request: int  # events per batch for ingest, 1 otherwise
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    first_error: str = ""
    # CPU cores busy while measured: near 1.0 on the client means the client was the limit.
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        return self.requests_per_s * self.items_per_request

    def as_json(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "items_per_request": self.items_per_request,
            "requests_per_s": round(self.requests_per_s, 1),
            "items_per_s": round(self.items_per_s, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "mean_ms": round(self.mean_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "client_cpu_cores": round(self.client_cpu, 2),
            "server_cpu_cores": round(self.server_cpu, 2),
        }
        if self.first_error:
            out["first_error"] = self.first_error
        return out


@dataclass
class _Run:
    measure_from: float
    stop_at: float
    latencies: list[float]
    last_end: float = 0.0
    errors: int = 0
    first_error: str = ""
    terminated: bool = False

    def terminate(self) -> None:
        self.terminated = True
        self.stop_at = 0.0


def run_load(
    base_url: str,
    calls: Sequence[Call],
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    items_per_request: int = 1,
    tick: Tick | None = None,
    server_pid: int | None = None,
) -> Measurement:
    """Send `calls` round-robin from `concurrency` connections for warmup + seconds; measure
    the requests that start after the warm-up (each one finishes, so slow ones still count)."""
    if not calls:
        raise ValueError("no requests to send")
    measured = asyncio.run(
        _drive(base_url, calls, concurrency, seconds, warmup, items_per_request, tick, server_pid)
    )
    if measured is None:
        raise KeyboardInterrupt("terminated by SIGTERM")
    return measured


async def _drive(
    base_url: str,
    calls: Sequence[Call],
    concurrency: int,
    seconds: float,
    warmup: float,
    items_per_request: int,
    tick: Tick | None,
    server_pid: int | None,
) -> Measurement | None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    run = _Run(measure_from=started + warmup, stop_at=started + warmup + seconds, latencies=[])
    # One shared cycle: asyncio is single-threaded, so next() needs no lock.
    order = itertools.cycle(calls)
    async with (
        _stop_on_sigterm(run),
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=TIMEOUT_S) as client,
    ):
        workers = [asyncio.create_task(_worker(client, order, run)) for _ in range(concurrency)]
        ticker = asyncio.create_task(_ticker(started, tick)) if tick else None
        cpu = asyncio.create_task(_cpu_during(run, server_pid))
        helpers = [cpu, *([ticker] if ticker else [])]
        try:
            await asyncio.gather(*workers)
            if run.terminated:
                return None
            cpu_end = _CpuSample.take(server_pid)
            client_cpu, server_cpu = (await cpu).cores_until(cpu_end)
        finally:
            for task in [*workers, *helpers]:
                task.cancel()
            await asyncio.gather(*workers, *helpers, return_exceptions=True)
    if tick:
        tick(warmup + seconds)
    lat = np.asarray(run.latencies, dtype=np.float64) * 1000.0
    if lat.size == 0:
        return Measurement(
            requests=0,
            errors=run.errors,
            seconds=seconds,
            items_per_request=items_per_request,
            p50_ms=0.0,
            p90_ms=0.0,
            p99_ms=0.0,
            mean_ms=0.0,
            max_ms=0.0,
            first_error=run.first_error,
        )
    p50, p90, p99 = (float(x) for x in np.percentile(lat, [50, 90, 99]))
    return Measurement(
        requests=int(lat.size),
        errors=run.errors,
        seconds=max(run.last_end - run.measure_from, 1e-9),
        items_per_request=items_per_request,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(lat.mean()),
        max_ms=float(lat.max()),
        first_error=run.first_error,
        client_cpu=client_cpu,
        server_cpu=server_cpu,
    )


@asynccontextmanager
async def _stop_on_sigterm(run: _Run) -> AsyncIterator[None]:
    """SIGTERM lets the workers finish their request and stop, and the run end cleanly; a
    Python-level handler would raise inside whichever task runs and leave it dangling."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        loop.add_signal_handler(signal.SIGTERM, run.terminate)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


async def send(client: httpx.AsyncClient, call: Call) -> str:
    """Make one call; the error it met ("" when it succeeded), named with the call."""
    try:
        response = await client.request(
            call.method, call.path, headers=call.headers, content=call.content
        )
    except httpx.HTTPError as exc:
        return f"{call.method} {call.path}: {type(exc).__name__}: {exc}"
    if response.status_code >= 400:
        return f"{call.method} {call.path}: HTTP {response.status_code} {response.text}"
    return ""


async def _worker(client: httpx.AsyncClient, order: itertools.cycle[Call], run: _Run) -> None:
    while True:
        call = next(order)
        begin = time.perf_counter()
        if begin >= run.stop_at:
            return
        error = await send(client, call)
        end = time.perf_counter()
        if begin < run.measure_from:
            continue
        if error:
            # A failed request is not a fast one: it counts as an error, not as a latency.
            run.errors += 1
            run.first_error = run.first_error or error[:500]
            continue
        run.latencies.append(end - begin)
        run.last_end = max(run.last_end, end)


async def _ticker(started: float, tick: Tick) -> None:
    while True:
        tick(time.perf_counter() - started)
        await asyncio.sleep(TICK_S)


@dataclass(frozen=True)
class _CpuSample:
    wall: float
    client: float
    server: float

    @classmethod
    def take(cls, server_pid: int | None) -> _CpuSample:
        return cls(time.perf_counter(), time.process_time(), _process_cpu(server_pid))

    def cores_until(self, end: _CpuSample) -> tuple[float, float]:
        wall = max(end.wall - self.wall, 1e-9)
        return (end.client - self.client) / wall, (end.server - self.server) / wall


async def _cpu_during(run: _Run, server_pid: int | None) -> _CpuSample:
    """The CPU counters when the warm-up ends."""
    await asyncio.sleep(max(run.measure_from - time.perf_counter(), 0.0))
    return _CpuSample.take(server_pid)


def _process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of another process (Linux /proc); 0 where unknown."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the parenthesised command name start at field 3; utime, stime are 14, 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
