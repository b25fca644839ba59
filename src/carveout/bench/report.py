"""Bench reports: the machine they ran on, a Rich table for people and JSON for the record."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.table import Table

from carveout import __version__
from carveout.bench.api import DATA_LABEL, FEED_LIMIT, ApiBenchResult, ScenarioResult
from carveout.bench.servers import UVICORN_ARGS
from carveout.storage.pgcluster import PgClusterError, find_bindir

CLIENT_BOUND_CORES = 0.9
PACKAGES = ("fastapi", "starlette", "pydantic", "uvicorn", "httptools", "uvloop", "httpx")


def machine() -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, memory, and the versions of what served them."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "ram_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(),
        "packages": {name: _package_version(name) for name in PACKAGES},
    }


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; {info['os']}; "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}"
    )


def api_json(result: ApiBenchResult, info: dict[str, Any]) -> dict[str, Any]:
    config = result.config
    return {
        "benchmark": "api",
        "carveout": __version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_total": round(result.seconds, 1),
        "machine": info,
        "data": DATA_LABEL,
        "parameters": {
            "backends": list(config.backends),
            "seconds": config.seconds,
            "warmup_seconds": config.warmup,
            "concurrency": config.concurrency,
            "batch": config.batch,
            "users": config.users,
            "history": config.history,
            "seed": config.seed,
            "server": f"uvicorn {' '.join(UVICORN_ARGS)}",
            "client": "httpx.AsyncClient, HTTP/1.1 keep-alive, closed loop, same process",
        },
        "backends": [
            {
                "name": b.name,
                "version": b.version,
                "skipped": b.skipped or None,
                "notes": b.notes,
                "data": b.data,
                "setup_seconds": b.setup_seconds,
            }
            for b in result.backends
        ],
        "results": [_result_json(r) for r in result.results],
    }


def _result_json(r: ScenarioResult) -> dict[str, Any]:
    return {
        "backend": r.backend,
        "scenario": r.scenario.name,
        "unit": r.scenario.unit,
        "carveout": {"endpoint": r.scenario.endpoint, **r.carveout.as_json()},
        "baseline": {"endpoint": r.scenario.baseline_endpoint, **r.baseline.as_json()},
        "ratio": {
            "throughput": round(r.throughput_ratio, 3),
            "p50": round(r.p50_ratio, 2),
            "p99": round(r.p99_ratio, 2),
        },
    }


def api_table(result: ApiBenchResult) -> Table:
    table = Table(
        title="carveout API vs a trivial FastAPI endpoint (same run, same client)",
        caption="× = carveout / baseline: throughput below 1, latency above 1 mean carveout is "
        "slower",
    )
    for name in ("backend", "scenario"):
        table.add_column(name)
    for name in ("carveout", "p50 ms", "p99 ms", "baseline", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")
    for name in ("× thru", "× p50", "× p99"):
        table.add_column(name, justify="right", style="bold")
    for r in result.results:
        c, b = r.carveout, r.baseline
        table.add_row(
            r.backend,
            f"{r.scenario.name} {r.scenario.unit}",
            f"{c.items_per_s:,.0f}",
            f"{c.p50_ms:.1f}",
            f"{c.p99_ms:.1f}",
            f"{b.items_per_s:,.0f}",
            f"{b.p50_ms:.1f}",
            f"{b.p99_ms:.1f}",
            f"{r.throughput_ratio:.3f}",
            f"{r.p50_ratio:.1f}",
            f"{r.p99_ratio:.1f}",
        )
    for backend in result.backends:
        if backend.skipped:
            table.add_row(backend.name, backend.skipped, *([""] * 9), style="dim")
    return table


def scenario_lines(result: ApiBenchResult) -> list[str]:
    """What each scenario sends to carveout and to the baseline."""
    batch = result.config.batch
    return [
        f"feed: GET /v1/feed?limit={FEED_LIMIT} as a random bench user vs GET /ping",
        f"ingest: POST /v1/events, {batch} real watch/impression events per request, vs "
        "POST /echo of the same bytes (parsed with the same pydantic model)",
    ]


def markdown_table(result: ApiBenchResult) -> str:
    """The same numbers as a Markdown table, for benchmarks/README.md."""
    head = (
        "| backend | scenario | carveout | p50 ms | p99 ms | baseline | p50 ms | p99 ms "
        "| × throughput | × p50 | × p99 |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    rows = []
    for r in result.results:
        c, b = r.carveout, r.baseline
        rows.append(
            f"| {r.backend} | {r.scenario.name} "
            f"| {_rate(r.scenario.unit, c.items_per_s, c.requests_per_s)} "
            f"| {c.p50_ms:.1f} | {c.p99_ms:.1f} "
            f"| {_rate(r.scenario.unit, b.items_per_s, b.requests_per_s)} "
            f"| {b.p50_ms:.1f} | {b.p99_ms:.1f} "
            f"| **{r.throughput_ratio:.3f}** | {r.p50_ratio:.1f} "
            f"| {r.p99_ratio:.1f} |"
        )
    return head + "\n".join(rows) + "\n"


def client_bound_note(result: ApiBenchResult) -> str:
    """Say so when the load generator, not the baseline server, set the baseline's pace."""
    busy = [r.baseline.client_cpu for r in result.results]
    if not busy or max(busy) < CLIENT_BOUND_CORES:
        return ""
    return (
        f"the load generator used up to {max(busy):.2f} of a core while driving the baseline: "
        "the baseline figures are the client's ceiling, so the throughput ratios are upper "
        "bounds for carveout"
    )


def errors_note(result: ApiBenchResult) -> list[str]:
    notes = []
    for r in result.results:
        for who, m in (("carveout", r.carveout), ("baseline", r.baseline)):
            if m.errors:
                notes.append(
                    f"{r.backend} {r.scenario.name} {who}: {m.errors} failed request(s), "
                    f"left out of the numbers; first: {m.first_error}"
                )
    return notes


def _rate(unit: str, items_per_s: float, requests_per_s: float) -> str:
    if unit == "req/s":
        return f"{requests_per_s:,.0f} req/s"
    return f"{items_per_s:,.0f} {unit} ({requests_per_s:,.0f} req/s)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _postgres_version() -> str:
    try:
        postgres = find_bindir() / "postgres"
    except PgClusterError:
        return "not installed"
    try:
        out = subprocess.run(  # noqa: S603 - the server binary, asked for its version only
            [str(postgres), "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().removeprefix("postgres (PostgreSQL) ")


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
