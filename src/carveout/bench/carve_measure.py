"""The clean carve run in this process, with hooks that time its phases and its fence.

The cutover reports its pause right after it releases the fence, so the release instant and the
pause give the fence window on the same clock as the client's requests (CLOCK_MONOTONIC)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout import carve
from carveout.bench.api import Progress
from carveout.bench.carve_baseline import CopyRate, db_bytes
from carveout.bench.carve_pg import table_bytes
from carveout.carve import Phase
from carveout.cells import Cell, Deployment
from carveout.datamap import TABLES


@dataclass
class CarveMeasure:
    outcome: carve.CarveOutcome
    phase_started: dict[str, float] = field(default_factory=dict)
    phase_ended: dict[str, float] = field(default_factory=dict)
    fence: tuple[float, float] = (0.0, 0.0)
    captured_seq: dict[str, int] = field(default_factory=dict)  # carve_changes head per phase end
    target_bytes_after_copy: int = 0
    # Logical replication (PostgreSQL to PostgreSQL): the subscription copies and streams, so
    # the carve counts no rows or changes of its own; the copy is J's rows at the start.
    replication: bool = False
    rows_to_copy: int = 0

    @property
    def copy(self) -> CopyRate:
        if self.replication:
            return CopyRate(
                "carve copy (J only; subscription's initial copy)",
                self.rows_to_copy,
                self.target_bytes_after_copy,
                self.outcome.copy_split.get("rows", self.outcome.seconds.get("copy", 0.0)),
                {
                    "rows_basis": "J's rows in the carved tables when the carve started",
                    "seconds_basis": "from the moment capture begins creating the "
                    "subscription (which starts its initial copy) until every table's initial "
                    "copy is done and the target's indexes are built again; the blob files "
                    "and user keys that follow are timed apart",
                    **{f"{k}_seconds": v for k, v in self.outcome.copy_split.items()},
                    "capture_start_to_copy_end_seconds": round(
                        self.phase_ended.get("copy", 0.0) - self.phase_started.get("capture", 0.0),
                        3,
                    ),
                },
            )
        return CopyRate(
            "carve copy (J only)",
            self.outcome.copy.rows,
            self.target_bytes_after_copy,
            self.outcome.seconds.get("copy", 0.0),
        )

    def source_change_rate(self) -> float:
        """Changes of J the source captured per second while the copy ran (triggers only)."""
        a, b = self.phase_ended.get("capture"), self.phase_ended.get("copy")
        if self.replication or a is None or b is None or b <= a:
            return 0.0
        return (self.captured_seq["copy"] - self.captured_seq["capture"]) / (b - a)

    def apply_rate(self) -> tuple[int, float]:
        """(changes, changes/s) of the catch-up phase: the backlog the copy left, applied."""
        if self.replication:
            return 0, 0.0
        cut = self.outcome.cutover
        changes = self.outcome.apply.changes - (cut.final_changes if cut else 0)
        seconds = self.outcome.seconds.get("catch-up", 0.0)
        return changes, changes / seconds if seconds else 0.0

    def verify_rate(self, whole_phase: bool = False) -> tuple[int, float]:
        """Rows checked per second of the checksums, source against target (what the issue
        compares with the copy); or of the whole phase, the leak scan included."""
        rows = sum(self.outcome.verify.tables.values()) if self.outcome.verify else 0
        seconds = self.outcome.seconds.get("verify", 0.0)
        if not whole_phase:
            seconds = self.outcome.verify_split.get("checksums", seconds)
        return rows, rows / seconds if seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        out = self.outcome
        changes, apply_per_s = self.apply_rate()
        verified, verify_per_s = self.verify_rate()
        return {
            "phase_seconds": out.seconds,
            "pause_ms_carve": round(out.cutover.pause_ms, 1) if out.cutover else None,
            "final_changes_while_fenced": out.cutover.final_changes if out.cutover else None,
            "fence_steps_ms": (
                {name: round(ms, 1) for name, ms in out.cutover.steps} if out.cutover else None
            ),
            "copy": {
                **self.copy.as_json(),
                "chunks": out.copy.chunks,
                "logical_bytes": out.copy.bytes,
                "blob_files": out.copy.blob_files,
            },
            "apply": {
                "method": "subscription streaming" if self.replication else "carve catch-up",
                "catch_up_seconds": out.seconds.get("catch-up", 0.0),
                "catch_up_changes": changes,
                "changes_per_s": round(apply_per_s, 1),
                "source_changes_per_s_during_copy": round(self.source_change_rate(), 1),
                "all_changes": out.apply.changes,
                "rows_synced": out.apply.rows_synced,
            },
            "verify": {
                "rows": verified,
                "rows_per_s": round(verify_per_s, 1),
                "seconds_basis": "the per-chunk checksums of J's rows, source against target; "
                "the removal of the target's capture log and the leak scan that follow in the "
                "same phase are timed apart",
                "rows_per_s_whole_phase": round(self.verify_rate(whole_phase=True)[1], 1),
                **{f"{k}_seconds": v for k, v in out.verify_split.items()},
                "chunks": out.verify.chunks if out.verify else 0,
                "mismatches": len(out.verify.mismatches) if out.verify else None,
            },
            "leaks": out.leaks.leaks if out.leaks else None,
            "purge_rows_left_in_source": out.purge.remaining_rows if out.purge else None,
        }


class _Hooks:
    """Reporter and after_phase callback of carve.run in one."""

    def __init__(
        self,
        source: Cell,
        target_db: Path,
        target_url: str | None,
        replicating: bool,
        progress: Progress,
    ) -> None:
        self.replicating = replicating
        self.source = source
        self.target_db = target_db
        self.target_url = target_url
        self.progress = progress
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.seq: dict[str, int] = {}
        self.released = 0.0
        self.target_bytes = 0
        self.rows: dict[str, int] = {}
        self.phase = ""

    def step(self, phase: Phase) -> None:
        self.phase = phase.value
        self.started[phase.value] = time.monotonic()
        self.progress("carve", phase.number - 2, len(carve.PHASES), phase.value)

    def advance(self, what: str, n: int) -> None:
        key = f"{self.phase} {what}"
        self.rows[key] = self.rows.get(key, 0) + n
        done = phase_index(self.phase)
        self.progress("carve", done, len(carve.PHASES), f"{key}: {self.rows[key]:,} rows")

    def say(self, message: str) -> None:
        if message.startswith("write pause"):
            self.released = time.monotonic()

    def after(self, phase: Phase) -> None:
        self.ended[phase.value] = time.monotonic()
        if phase in (Phase.CAPTURE, Phase.COPY) and not self.replicating:
            changes = TABLES["carve_changes"]
            with self.source.store.connect() as conn:
                head = conn.execute(sa.select(sa.func.coalesce(sa.func.max(changes.c.seq), 0)))
                self.seq[phase.value] = int(head.scalar_one())
        if phase is Phase.COPY:
            self.target_bytes = (
                db_bytes(self.target_db)
                if self.target_url is None
                else table_bytes(self.target_url)
            )
        self.progress("carve", phase.number - 1, len(carve.PHASES), f"{phase.value} done")


def phase_index(name: str) -> int:
    return [p.value for p in carve.PHASES].index(name) if name else 0


def measure_in_process(
    deployment: Deployment, spec: carve.CarveSpec, progress: Progress, rows_to_copy: int = 0
) -> CarveMeasure:
    source = deployment.cell(spec.source)
    target_db = deployment.data_dir / "cells" / spec.target / "cell.db"
    target_url = None if spec.storage == "sqlite" else spec.storage
    replicating = target_url is not None and source.store.backend == "postgresql"
    hooks = _Hooks(source, target_db, target_url, replicating, progress)
    outcome = carve.run(deployment, spec, reporter=hooks, after_phase=hooks.after)
    pause_s = outcome.cutover.pause_ms / 1000 if outcome.cutover else 0.0
    return CarveMeasure(
        outcome=outcome,
        phase_started=hooks.started,
        phase_ended=hooks.ended,
        fence=(hooks.released - pause_s, hooks.released),
        captured_seq=hooks.seq,
        target_bytes_after_copy=hooks.target_bytes,
        replication=replicating,
        rows_to_copy=rows_to_copy,
    )
