"""The exchange's periodic pass: every pair of cells the policy lets exchange, both ways."""

from __future__ import annotations

import logging

from carveout.cells import Deployment
from carveout.core import CarveoutError
from carveout.exchange.models import SyncReport
from carveout.exchange.permit import partners
from carveout.exchange.sync import sync

log = logging.getLogger("carveout.exchange")


def sync_all(deployment: Deployment) -> list[SyncReport]:
    """One sync per allowed (origin, receiver) pair. A pair that fails (a sync already running,
    a cell unreachable) is logged and skipped: the next pass retries it, and syncs are
    idempotent. In embedded mode every cell is local; in production each receiving cell runs
    this for itself. `carveout serve` runs it from its housekeeping tick."""
    reports = []
    deployment.refresh_policy()
    policy = deployment.policy
    for receiver in policy.names:
        for origin in partners(policy, receiver):
            try:
                report = sync(policy, deployment.cell(origin), deployment.cell(receiver))
            except CarveoutError as exc:
                log.warning("exchange %s -> %s skipped: %s", origin, receiver, exc)
                continue
            except Exception:
                # Beside serving, never fatal to it: the next pass re-runs the pair.
                log.exception("exchange %s -> %s failed", origin, receiver)
                continue
            for failure in report.failures:
                log.warning("exchange %s -> %s: %s", origin, receiver, failure)
            reports.append(report)
    return reports
