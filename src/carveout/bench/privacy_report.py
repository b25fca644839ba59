"""The privacy bench's report: a Rich table for people, JSON for the record, Markdown for docs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from carveout import __version__
from carveout.bench.privacy import (
    DATA_LABEL,
    KINDS,
    BackendRun,
    Measured,
    PrivacyBenchResult,
    percentile,
)
from carveout.bench.privacy_measure import POLL_S

TARGET_S = 1.0
OPS = ("export", "erasure")
CARVEOUT_PATH = (
    "HTTP API served by uvicorn (one worker, own process): export = POST /v1/me/exports, "
    f"GET /v1/me/exports/{{id}} every {POLL_S * 1000:.0f} ms until done, GET .../archive; "
    "erasure = DELETE /v1/me, timed to the receipt"
)
SCRIPT = "plain script (one DB-API connection held open; SQLite at the cell's synchronous=NORMAL)"
BASELINES = {
    "export": f"{SCRIPT}: SELECT * per data-map subject table WHERE <subject column> = ?, one "
    "JSON file (no decryption, no zip, no media, no recommender state)",
    "erasure": f"{SCRIPT}: DELETE per table erasure changes WHERE <subject column> = ?, one "
    "transaction (no key destruction, no counter reduction, no files, no receipt)",
}


def _samples(m: Measured, op: str) -> tuple[list[float], list[float]]:
    if op == "export":
        return m.export_s, m.baseline_export_s
    return m.erase_s, m.baseline_erase_s


def _target(kind: str, op: str) -> float | None:
    """Issue 6: export p95 <= 1 s for a typical user; erasure with receipt p95 <= 1 s."""
    return TARGET_S if op == "erasure" or kind == "typical" else None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _rows(run: BackendRun) -> list[tuple[str, str, Measured, list[float], list[float]]]:
    out = []
    for kind in KINDS:
        m = run.measured.get(kind)
        if m is None:
            continue
        for op in OPS:
            ours, base = _samples(m, op)
            out.append((kind, op, m, ours, base))
    return out


def _verdict(kind: str, op: str, p95: float) -> str:
    target = _target(kind, op)
    if target is None:
        return "-"
    return f"≤ {target:g} s {'met' if p95 <= target else 'MISSED'}"


def _checked(m: Measured, op: str) -> str:
    n = len(m.export_s)
    if op == "export":
        return f"{m.exports_verified}/{n} archives"
    return f"{m.receipts_verified}/{n} receipts, {m.scan_hits} hits"


def privacy_table(result: PrivacyBenchResult) -> Table:
    table = Table(
        title="carveout access export and erasure vs a plain SQL script (same cell, same run)",
        caption="ms; × = carveout / baseline: above 1 means carveout is slower",
    )
    for name in ("backend", "user", "op", "runs"):
        table.add_column(name)
    for name in ("p50 ms", "p95 ms", "base p50", "base p95", "× p50", "× p95"):
        table.add_column(name, justify="right", style="bold" if name.startswith("×") else None)
    for name in ("target p95", "verified"):
        table.add_column(name)
    for run in result.runs:
        if run.skipped:
            table.add_row(run.backend, run.skipped, *([""] * 10), style="dim")
            continue
        for kind, op, m, ours, base in _rows(run):
            p50, p95 = percentile(ours, 50), percentile(ours, 95)
            b50, b95 = percentile(base, 50), percentile(base, 95)
            table.add_row(
                run.backend,
                kind,
                op,
                str(len(ours)),
                f"{p50 * 1000:,.0f}",
                f"{p95 * 1000:,.0f}",
                f"{b50 * 1000:,.1f}",
                f"{b95 * 1000:,.1f}",
                _fmt(_ratio(p50, b50)),
                _fmt(_ratio(p95, b95)),
                _verdict(kind, op, p95),
                _checked(m, op),
            )
    return table


def _fmt(x: float | None) -> str:
    return f"{x:.1f}" if x is not None else "-"


def setup_lines(result: PrivacyBenchResult) -> list[str]:
    lines = []
    for run in result.runs:
        if run.skipped:
            continue
        pop = run.population
        lines.append(
            f"{run.backend}: cell of {pop.get('users', 0):,} SYNTHETIC users, "
            f"{pop.get('videos', 0):,} videos, {pop.get('events', 0):,} events, "
            f"{pop.get('follows', 0):,} follows, {pop.get('comments', 0):,} comments; model "
            f"{'trained in ' + format(run.train_s, '.0f') + ' s' if run.model else 'none'}; "
            f"{run.scans} byte-level scans after erasure ({', '.join(run.scanned)}), 0 hits; "
            f"load average {min(run.load, default=0):.1f}-{max(run.load, default=0):.1f}"
            + (
                f"; PostgreSQL data directory ({run.datadir_scan['bytes'] / 1e6:,.0f} MB) "
                f"scanned for all {run.datadir_scan['users']} erased users: "
                f"{run.datadir_scan['hits']} hits"
                if run.datadir_scan
                else ""
            )
        )
    for kind in KINDS:
        for run in result.runs:
            if kind in run.measured:
                p = run.measured[kind].profile
                lines.append(
                    f"{kind} user: {p.events:,} events ({p.watches} watches, {p.likes} likes, "
                    f"{p.comments} comments), {p.videos} videos, {p.follows} follows, "
                    f"{p.fans} followers, {p.consents} consents"
                )
                break
    return lines


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 4),
        "p95": round(percentile(values, 95), 4),
        "min": round(min(values), 4) if values else None,
        "max": round(max(values), 4) if values else None,
        "samples": [round(v, 4) for v in values],
    }


def _op_json(kind: str, op: str, ours: list[float], base: list[float]) -> dict[str, Any]:
    target = _target(kind, op)
    p95 = percentile(ours, 95)
    p50_ratio = _ratio(percentile(ours, 50), percentile(base, 50))
    p95_ratio = _ratio(p95, percentile(base, 95))
    return {
        "carveout_seconds": _stats(ours),
        "baseline_seconds": _stats(base),
        "baseline": BASELINES[op],
        "ratio": {
            "p50": round(p50_ratio, 2) if p50_ratio is not None else None,
            "p95": round(p95_ratio, 2) if p95_ratio is not None else None,
        },
        "target_p95_seconds": target,
        "target_met": (p95 <= target) if target is not None else None,
    }


def _run_json(run: BackendRun) -> dict[str, Any]:
    if run.skipped:
        return {"backend": run.backend, "skipped": run.skipped}
    users = {}
    for kind, m in run.measured.items():
        users[kind] = {
            "profile": m.profile.as_json(),
            "export": _op_json(kind, "export", m.export_s, m.baseline_export_s),
            "erasure": _op_json(kind, "erasure", m.erase_s, m.baseline_erase_s),
            "archive_bytes": _stats([float(b) for b in m.archive_bytes]),
            "exports_verified": m.exports_verified,
            "receipts_verified": m.receipts_verified,
            "control_hits_before_erasure": m.control_hits,
            "scan_hits_after_erasure": m.scan_hits,
        }
    return {
        "backend": run.backend,
        "version": run.version,
        "notes": run.notes,
        "population_rows_synthetic": run.population,
        "setup_seconds": round(run.setup_s, 1),
        "load_average_1min": {
            "min": round(min(run.load), 2) if run.load else None,
            "median": round(percentile(run.load, 50), 2),
            "max": round(max(run.load), 2) if run.load else None,
        },
        "model": {"version": run.model, "train_seconds": round(run.train_s, 1)},
        "scans": {
            "after_each_erasure": run.scans,
            "paths": run.scanned,
            "hits": 0,
            "seconds": round(run.scan_s, 1),
            "postgresql_data_directory": run.datadir_scan or None,
        },
        "users": users,
    }


def privacy_json(result: PrivacyBenchResult, machine: dict[str, Any]) -> dict[str, Any]:
    config = result.config
    return {
        "benchmark": "privacy",
        "carveout": __version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_total": round(result.seconds, 1),
        "machine": machine,
        "data": DATA_LABEL,
        "parameters": {
            "backends": list(config.backends),
            "quick": config.quick,
            "runs": config.n_runs,
            "population_users": config.n_users,
            "seed": config.seed,
            "model": config.train,
            "carveout_path": CARVEOUT_PATH,
            "baselines": BASELINES,
            "percentiles": "numpy linear interpolation over the runs; one unmeasured warm-up "
            "user per backend first",
        },
        "calibration": result.calibration,
        "results": [_run_json(run) for run in result.runs],
    }


def privacy_markdown(result: PrivacyBenchResult) -> str:
    head = (
        "| backend | user | op | runs | p50 ms | p95 ms | baseline p50 ms | baseline p95 ms "
        "| × p50 | × p95 | target p95 |\n|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n"
    )
    rows = []
    for run in result.runs:
        if run.skipped:
            rows.append(f"| {run.backend} | {run.skipped} |||||||||| ")
            continue
        for kind, op, _m, ours, base in _rows(run):
            p50, p95 = percentile(ours, 50), percentile(ours, 95)
            b50, b95 = percentile(base, 50), percentile(base, 95)
            rows.append(
                f"| {run.backend} | {kind} | {op} | {len(ours)} | {p50 * 1000:,.0f} "
                f"| {p95 * 1000:,.0f} | {b50 * 1000:,.1f} | {b95 * 1000:,.1f} "
                f"| **{_fmt(_ratio(p50, b50))}** | **{_fmt(_ratio(p95, b95))}** "
                f"| {_verdict(kind, op, p95)} |"
            )
    return head + "\n".join(rows) + "\n"
