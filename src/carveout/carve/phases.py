"""What each phase of the carve does (STEP 2 prepare to STEP 9 purge), and what a run reports.

The runner (runner.py) decides which phases are due, in which order and at what priority; this
module holds each phase's work and the outcome it fills in."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import sqlalchemy as sa

from carveout.carve import keys, replication, state
from carveout.carve.apply import ApplyStats, catch_up, lag
from carveout.carve.capture import install_capture, remove_capture_table_by_table
from carveout.carve.copy import CopyStats, copy_all
from carveout.carve.cutover import PRE_FENCE_LAG, CutoverReport, announce, cutover
from carveout.carve.ddl import prefer_to_lose, retrying
from carveout.carve.models import CarveFailed, CarveSpec, Phase
from carveout.carve.priority import at_lower_priority
from carveout.carve.purge import PurgeReport, purge, purge_models
from carveout.carve.sync import copy_missing_blobs, uses_replication
from carveout.carve.verify import LeakReport, VerifyReport, leak_scan, remove_stray_blobs, verify
from carveout.cells import Cell, Deployment, FenceBoard
from carveout.datamap import TABLES
from carveout.recommend import train_cell
from carveout.recommend.service import forget


class Reporter(Protocol):
    def step(self, phase: Phase) -> None: ...

    def advance(self, what: str, n: int) -> None: ...

    def say(self, message: str) -> None: ...


class QuietReporter:
    def step(self, phase: Phase) -> None:
        pass

    def advance(self, what: str, n: int) -> None:
        pass

    def say(self, message: str) -> None:
        pass


# Phases with no deadline and no lock that writers wait for: they yield the CPU to serving.
YIELDING_PHASES = frozenset({Phase.VERIFY, Phase.RETRAIN})


@dataclass
class CarveOutcome:
    spec: CarveSpec
    seconds: dict[str, float] = field(default_factory=dict)
    copy: CopyStats = field(default_factory=CopyStats)
    # The replication path's copy phase by part (rows, blob_files, user_keys), in seconds.
    # Its rows' part is timed from `copy_began` (time.monotonic()), when capture asked the
    # subscription to copy, if this process did.
    copy_began: float | None = None
    copy_split: dict[str, float] = field(default_factory=dict)
    apply: ApplyStats = field(default_factory=ApplyStats)
    cutover: CutoverReport | None = None
    verify: VerifyReport | None = None
    # The verify phase by part (checksums, capture_log_off, leak_scan), in seconds.
    verify_split: dict[str, float] = field(default_factory=dict)
    leaks: LeakReport | None = None
    purge: PurgeReport | None = None


def run_phase(
    deployment: Deployment,
    spec: CarveSpec,
    phase: Phase,
    out: CarveOutcome,
    rep: Reporter,
    began: float,
    source: Cell,
    target: Cell,
) -> dict[str, Any]:
    """One phase's work; returns the details saved with its mark."""
    codes = spec.jurisdictions
    details: dict[str, Any] = {}
    if phase is Phase.PREPARE:
        details = {"target": target.store.url, "spec": spec.to_json()}
    elif phase is Phase.CAPTURE:
        if uses_replication(source, target):
            out.copy_began = replication.start(source, target, codes, spec.target)
            details = {"method": "logical replication (publication with row filters)"}
        else:

            def capture() -> None:
                with source.store.begin() as conn:
                    prefer_to_lose(conn)
                    install_capture(conn, codes)

            retrying(capture)
            details = {"method": "triggers into carve_changes"}
    elif phase is Phase.COPY and uses_replication(source, target):
        replication.wait_synced(target, spec.target)
        rows_done = time.monotonic()
        blob_files = copy_missing_blobs(source, target)
        blobs_done = time.monotonic()
        user_keys = keys.hand_over(source, target, codes)
        # The rows' share of the phase is what compares with a row copy tool. The
        # subscription starts copying when capture creates it: counted from then, when this
        # process saw it (a resumed carve counts from this phase's start).
        out.copy_split = {
            "rows": round(rows_done - (out.copy_began or began), 3),
            "blob_files": round(blobs_done - rows_done, 3),
            "user_keys": round(time.monotonic() - blobs_done, 3),
        }
        details = {
            "method": "subscription initial copy",
            "blob_files": blob_files,
            "user_keys": user_keys,
            "split_seconds": out.copy_split,
        }
    elif phase is Phase.CATCHUP and uses_replication(source, target):
        announce(deployment, spec)
        with replication.catching_up(source, spec.target) as caught:
            caught.wait()
        details = {"method": "subscription streaming"}
    elif phase is Phase.COPY:
        out.copy = copy_all(source, target, codes, rep.advance)
        details = {
            "rows": out.copy.rows,
            "chunks": out.copy.chunks,
            "blob_files": out.copy.blob_files,
            "user_keys": keys.hand_over(source, target, codes),
        }
    elif phase is Phase.CATCHUP:
        announce(deployment, spec)
        catch_up(source, target, codes, out.apply, until_lag=PRE_FENCE_LAG, max_seconds=300)
        details = {"changes": out.apply.changes, "lag": lag(source, target)}
    elif phase is Phase.CUTOVER:
        if spec.target not in deployment.policy.names:
            out.cutover = cutover(deployment, spec, source, target, out.apply, rep.say)
            details = {
                "pause_ms": round(out.cutover.pause_ms, 1),
                "final_changes": out.cutover.final_changes,
            }
        FenceBoard(deployment.data_dir).release()
        # The target's counters were rebuilt inside the fence, from its own events only.
        details["stray_blobs_removed"] = remove_stray_blobs(target)
    elif phase is Phase.VERIFY:
        out.verify = verify(source, target, codes, rep.advance)
        checked = time.monotonic()
        if out.verify.ok:
            # The target serves J by now: its writers must never wait for this.
            remove_capture_table_by_table(target.store)
            with target.store.begin() as conn:
                conn.execute(sa.delete(TABLES["carve_changes"]))
        log_off = time.monotonic()
        out.leaks = leak_scan(target, codes, deployment.policy)
        out.verify_split = {
            "checksums": round(checked - began, 3),
            "capture_log_off": round(log_off - checked, 3),
            "leak_scan": round(time.monotonic() - log_off, 3),
        }
        details = {
            "chunks": out.verify.chunks,
            "mismatches": out.verify.mismatches,
            "leaks": out.leaks.leaks,
        }
        if not out.verify.ok or out.leaks.leaks:
            raise CarveFailed(
                f"verify found {len(out.verify.mismatches)} mismatching chunks and "
                f"{out.leaks.leaks} leaks: {out.verify.mismatches[:3]}"
            )
    elif phase is Phase.RETRAIN:
        with target.store.connect() as conn:
            trained = state.get(conn, "retrain:model")
        if trained and (target.root / "models" / trained["model"]).is_dir():
            details = trained  # trained before a restart: not again
        else:
            # No counter rebuild here: the cutover rebuilt them before the switch and
            # writers keep them since; a rebuild now would stall J's writers.
            manifest = train_cell(target)
            rep.say(
                f"model {manifest.version} trained on {', '.join(manifest.jurisdictions)} "
                f"only ({manifest.rows.get('watch_events', 0):,} watch events)"
            )
            details = {
                "model": manifest.version,
                "lineage": list(manifest.jurisdictions),
                "rows": manifest.rows,
            }
            with target.store.begin() as conn:
                state.put(conn, "retrain:model", details)
    elif phase is Phase.PURGE:
        if uses_replication(source, target):
            replication.stop(source, target, spec.target)  # idempotent; identity back
        out.purge = purge(source, codes, spec.target)
        # Models that learned from J leave with J's rows; the source retrains without them.
        out.purge.models = purge_models(source, codes)
        out.purge.user_keys = source.vault.keys.purge(codes)
        forget(source)
        if out.purge.models:
            # Like the target's retrain: no deadline, so it yields the CPU to serving.
            at_lower_priority(partial(train_cell, source))
        details = {
            "models": out.purge.models,
            "rows": out.purge.rows,
            "remaining": out.purge.remaining_rows,
            "blob_files": out.purge.blob_files,
            "user_keys": out.purge.user_keys,
        }
    return details
