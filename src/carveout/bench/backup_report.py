"""The backup bench's report: a Rich table for people, JSON for the record, Markdown for docs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from carveout import __version__
from carveout.backup.chunks import COMPRESSION, ENCRYPTION
from carveout.bench.backup import BackendRun, BackupBenchResult
from carveout.bench.bundle import JURISDICTIONS
from carveout.bench.clock import Best

TAR_ZSTD = "tar | zstd -3"
UNTAR_ZSTD = "zstd -d | tar -x"


@dataclass(frozen=True)
class Step:
    """One row of the report: carveout's seconds and the baseline's on the same bytes."""

    name: str
    data_bytes: int
    ours: Best
    theirs: Best
    baseline: str  # the raw tools that did the baseline's work
    stored_bytes: int | None = None
    baseline_stored_bytes: int | None = None

    def mb_s(self, seconds: float) -> float:
        return self.data_bytes / 1e6 / seconds if seconds else 0.0

    @property
    def ratio(self) -> float | None:
        return self.ours.wall / self.theirs.wall if self.theirs.wall else None

    @property
    def cpu_ratio(self) -> float | None:
        return self.ours.cpu / self.theirs.cpu if self.theirs.cpu else None


def baseline_name(backend: str, step: str) -> str:
    if backend == "s3":
        return (
            f"online backup API + zstd -3, {TAR_ZSTD}, boto3 upload"
            if step == "backup"
            else f"boto3 download, zstd -d, {UNTAR_ZSTD}"
        )
    if backend == "sqlite":
        return (
            f"online backup API + zstd -3, {TAR_ZSTD}"
            if step == "backup"
            else f"zstd -d, {UNTAR_ZSTD}"
        )
    return f"pg_dump -Fc, {TAR_ZSTD}" if step == "backup" else f"pg_restore, {UNTAR_ZSTD}"


def steps(run: BackendRun) -> list[Step]:
    out = [
        Step(
            "backup",
            run.data_bytes,
            run.backup,
            run.baseline_backup,
            baseline_name(run.backend, "backup"),
            run.stored_bytes,
            run.baseline_stored_bytes,
        ),
        Step(
            "restore",
            run.data_bytes,
            run.restore,
            run.baseline_restore,
            baseline_name(run.backend, "restore"),
        ),
    ]
    if run.bundle is not None:
        b = run.bundle
        out += [
            Step(
                "bundle export",
                b.data_bytes,
                b.export,
                b.baseline_pack,
                f"{TAR_ZSTD} of the same rows and blobs",
                b.stored_bytes,
                b.baseline_stored_bytes,
            ),
            Step(
                "bundle export (db tools)",
                b.data_bytes,
                b.export,
                b.native_export,
                b.native_export_tools,
                b.stored_bytes,
                b.native_stored_bytes,
            ),
            Step("bundle import", b.data_bytes, b.import_, b.baseline_unpack, UNTAR_ZSTD),
            Step(
                "bundle import (db tools)",
                b.data_bytes,
                b.import_,
                b.native_import,
                b.native_import_tools,
            ),
        ]
    return out


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _mb(n: int | None) -> str:
    return f"{n / 1e6:,.1f}" if n is not None else ""


def backup_table(result: BackupBenchResult) -> Table:
    table = Table(
        title="carveout backup vs the raw tools (same data, same run)",
        caption=(
            "× = carveout time / baseline time: above 1 means carveout is slower; CPU × the "
            "same for CPU seconds (this process, its threads and child processes)"
        ),
    )
    for name in ("backend", "step"):
        table.add_column(name)
    for name in (
        "data MB",
        "carveout MB/s",
        "baseline MB/s",
        "×",
        "CPU ×",
        "stored MB",
        "baseline MB",
    ):
        table.add_column(name, justify="right", style="bold" if name == "×" else None)
    table.add_column("baseline")
    for run in result.runs:
        if run.skipped:
            table.add_row(run.backend, run.skipped, *([""] * 8), style="dim")
            continue
        for step in steps(run):
            table.add_row(
                run.backend,
                step.name,
                _mb(step.data_bytes),
                f"{step.mb_s(step.ours.wall):,.1f}",
                f"{step.mb_s(step.theirs.wall):,.1f}",
                _ratio(step.ratio),
                _ratio(step.cpu_ratio),
                _mb(step.stored_bytes),
                _mb(step.baseline_stored_bytes),
                step.baseline,
            )
    return table


def breakdown_lines(result: BackupBenchResult) -> list[str]:
    """Where carveout's backup seconds went, and the encryption + checksum overhead ratio."""
    lines = []
    for run in result.runs:
        if run.skipped:
            continue
        t = run.timings
        base = run.baseline_backup.wall
        # The checks run beside the write-out: only the part longer than it adds to the total.
        without_checks = t.total_s - max(0.0, t.table_checks_s - t.write_out_s)
        lines.append(
            f"{run.backend} backup {t.total_s:.2f} s: snapshot {t.snapshot_s:.2f}, then side by "
            f"side per-table checksums {t.table_checks_s:.2f} and write-out {t.write_out_s:.2f} "
            f"(seconds summed over its threads: zstd {t.compress_s:.2f}, AES-GCM "
            f"{t.encrypt_s:.2f}, sha256 {t.checksum_s:.2f}, write+fsync {t.write_s:.2f})"
            + (f", then the upload to S3 {t.upload_s:.2f}" if t.upload_s else "")
            + "; encryption + checksums overhead at most "
            f"×{run.crypto_overhead:.3f}; without the per-table checksums "
            f"×{without_checks / base:.2f} the baseline"
        )
        if run.bundle is not None:
            b = run.bundle
            lines.append(
                f"{run.backend} bundle of {JURISDICTIONS}: {b.rows:,} rows and {b.blobs} blob "
                f"files; export {b.export.wall:.2f} s, import {b.import_.wall:.2f} s (every chunk "
                f"checked, rows and blobs loaded, verify, leak scan); the database's own tools "
                f"on the same rows: export {b.native_export.wall:.2f} s, load into a new "
                f"database {b.native_import.wall:.2f} s"
            )
    return lines


def backup_json(result: BackupBenchResult, machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": "backup",
        "carveout": __version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_total": round(result.seconds, 1),
        "machine": machine,
        "data": result.config.data_label,
        "parameters": {
            "backends": list(result.config.backends),
            "seed": result.config.seed,
            "rounds": result.config.rounds,
            "synthetic_users": result.config.synthetic_users,
            "compression": COMPRESSION,
            "encryption": ENCRYPTION,
            "bundle_jurisdictions": JURISDICTIONS,
        },
        "results": [_run_json(run) for run in result.runs],
    }


def _seconds(best: Best, step: Step) -> dict[str, float]:
    return {
        "seconds": round(best.wall, 3),
        "cpu_seconds": round(best.cpu, 3),
        "mb_s": round(step.mb_s(best.wall), 1),
    }


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "step": step.name,
        "data_bytes": step.data_bytes,
        "carveout": _seconds(step.ours, step),
        "baseline": {"tools": step.baseline, **_seconds(step.theirs, step)},
        "ratio": round(step.ratio, 3) if step.ratio is not None else None,
        "cpu_ratio": round(step.cpu_ratio, 3) if step.cpu_ratio is not None else None,
    }


def _run_json(run: BackendRun) -> dict[str, Any]:
    if run.skipped:
        return {"backend": run.backend, "skipped": run.skipped}
    out: dict[str, Any] = {
        "backend": run.backend,
        "version": run.version,
        "notes": run.notes,
        "data_bytes": run.data_bytes,
        "stored_bytes": run.stored_bytes,
        "baseline_stored_bytes": run.baseline_stored_bytes,
        "steps": [_step_json(step) for step in steps(run)],
        "backup_seconds": {k: round(v, 3) for k, v in vars(run.timings).items()},
        "encryption_checksum_overhead": round(run.crypto_overhead, 3),
    }
    if run.bundle is not None:
        b = run.bundle
        out["bundle"] = {
            "jurisdictions": b.jurisdictions,
            "rows": b.rows,
            "blobs": b.blobs,
            "data_bytes": b.data_bytes,
            "stored_bytes": b.stored_bytes,
            "baseline_stored_bytes": b.baseline_stored_bytes,
            "native_stored_bytes": b.native_stored_bytes,
        }
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe inside a Markdown table cell ends the cell


def backup_markdown(result: BackupBenchResult) -> str:
    head = (
        "| backend | step | data MB | carveout MB/s | baseline MB/s | × | CPU × | baseline |\n"
        "|---|---|--:|--:|--:|--:|--:|---|\n"
    )
    rows = [
        f"| {run.backend} | {step.name} | {_mb(step.data_bytes)} "
        f"| {step.mb_s(step.ours.wall):,.1f} | {step.mb_s(step.theirs.wall):,.1f} "
        f"| **{_ratio(step.ratio)}** | {_ratio(step.cpu_ratio)} | {_cell(step.baseline)} |"
        for run in result.runs
        if not run.skipped
        for step in steps(run)
    ]
    return head + "\n".join(rows) + "\n"
