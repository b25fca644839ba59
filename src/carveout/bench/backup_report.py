"""The backup bench's report: a Rich table for people, JSON for the record, Markdown for docs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from carveout import __version__
from carveout.backup.chunks import COMPRESSION, ENCRYPTION
from carveout.bench.backup import DATA_LABEL, BackendRun, BackupBenchResult


def _rows(run: BackendRun) -> list[tuple[str, float, float]]:
    return [
        ("backup", run.backup_s, run.baseline_backup_s),
        ("restore", run.restore_s, run.baseline_restore_s),
    ]


def baseline_name(backend: str, step: str) -> str:
    if backend == "sqlite":
        return (
            "online backup API + zstd -3, tar | zstd -3"
            if step == "backup"
            else "zstd -d, zstd -d | tar -x"
        )
    return "pg_dump -Fc, tar | zstd -3" if step == "backup" else "pg_restore, zstd -d | tar -x"


def backup_table(result: BackupBenchResult) -> Table:
    table = Table(
        title="carveout backup vs the raw tools (same data, same run)",
        caption="× = carveout time / baseline time: above 1 means carveout is slower",
    )
    for name in ("backend", "step"):
        table.add_column(name)
    for name in ("data MB", "carveout MB/s", "baseline MB/s", "×", "stored MB", "baseline MB"):
        table.add_column(name, justify="right", style="bold" if name == "×" else None)
    table.add_column("baseline")
    for run in result.runs:
        if run.skipped:
            table.add_row(run.backend, run.skipped, *([""] * 7), style="dim")
            continue
        for step, ours, base in _rows(run):
            stored = run.stored_bytes if step == "backup" else None
            table.add_row(
                run.backend,
                step,
                f"{run.data_bytes / 1e6:,.1f}",
                f"{run.mb_s(ours):,.1f}",
                f"{run.mb_s(base):,.1f}",
                f"{ours / base:.2f}" if base else "-",
                f"{stored / 1e6:,.1f}" if stored is not None else "",
                f"{run.baseline_stored_bytes / 1e6:,.1f}" if stored is not None else "",
                baseline_name(run.backend, step),
            )
    return table


def breakdown_lines(result: BackupBenchResult) -> list[str]:
    """Where carveout's backup seconds went, and the encryption + checksum overhead ratio."""
    lines = []
    for run in result.runs:
        if run.skipped:
            continue
        t = run.timings
        base = run.baseline_backup_s or 1.0
        # The checks run beside the write-out: only the part longer than it adds to the total.
        without_checks = t.total_s - max(0.0, t.table_checks_s - t.write_out_s)
        lines.append(
            f"{run.backend} backup {t.total_s:.2f} s: snapshot {t.snapshot_s:.2f}, then side by "
            f"side per-table checksums {t.table_checks_s:.2f} and write-out {t.write_out_s:.2f} "
            f"(zstd {t.compress_s:.2f}, AES-GCM {t.encrypt_s:.2f}, sha256 {t.checksum_s:.2f}, "
            f"write+fsync {t.write_s:.2f}); encryption + checksums overhead "
            f"×{run.crypto_overhead:.3f}; without the per-table checksums "
            f"×{without_checks / base:.2f} the baseline"
        )
    return lines


def backup_json(result: BackupBenchResult, machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": "backup",
        "carveout": __version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_total": round(result.seconds, 1),
        "machine": machine,
        "data": DATA_LABEL,
        "parameters": {
            "backends": list(result.config.backends),
            "seed": result.config.seed,
            "rounds": result.config.rounds,
            "compression": COMPRESSION,
            "encryption": ENCRYPTION,
        },
        "results": [_run_json(run) for run in result.runs],
    }


def _run_json(run: BackendRun) -> dict[str, Any]:
    if run.skipped:
        return {"backend": run.backend, "skipped": run.skipped}
    return {
        "backend": run.backend,
        "version": run.version,
        "notes": run.notes,
        "data_bytes": run.data_bytes,
        "stored_bytes": run.stored_bytes,
        "baseline_stored_bytes": run.baseline_stored_bytes,
        "steps": [
            {
                "step": step,
                "carveout": {"seconds": round(ours, 3), "mb_s": round(run.mb_s(ours), 1)},
                "baseline": {
                    "tools": baseline_name(run.backend, step),
                    "seconds": round(base, 3),
                    "mb_s": round(run.mb_s(base), 1),
                },
                "ratio": round(ours / base, 3) if base else None,
            }
            for step, ours, base in _rows(run)
        ],
        "backup_seconds": {k: round(v, 3) for k, v in vars(run.timings).items()},
        "encryption_checksum_overhead": round(run.crypto_overhead, 3),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe inside a Markdown table cell ends the cell


def backup_markdown(result: BackupBenchResult) -> str:
    head = (
        "| backend | step | data MB | carveout MB/s | baseline MB/s | × | baseline |\n"
        "|---|---|--:|--:|--:|--:|---|\n"
    )
    rows = [
        f"| {run.backend} | {step} | {run.data_bytes / 1e6:,.1f} | {run.mb_s(ours):,.1f} "
        f"| {run.mb_s(base):,.1f} | **{ours / base:.2f}** "
        f"| {_cell(baseline_name(run.backend, step))} |"
        for run in result.runs
        if not run.skipped
        for step, ours, base in _rows(run)
        if base
    ]
    return head + "\n".join(rows) + "\n"
