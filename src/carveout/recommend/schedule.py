"""When a cell's recommender is due for a retrain: its newest model is older than the period and
watch events arrived since it was trained (or it has none yet and there is data to learn from)."""

from __future__ import annotations

import os

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.datamap import TABLES
from carveout.recommend import artefact
from carveout.recommend.artefact import ArtefactRefused

EVENTS = TABLES["events"]
HOUR_MS = 3600 * 1000
DEFAULT_PERIOD_HOURS = 24.0


def period_ms() -> int:
    """CARVEOUT_RETRAIN_HOURS (default 24): how stale a model may get before `serve` retrains."""
    raw = os.environ.get("CARVEOUT_RETRAIN_HOURS", "")
    hours = float(raw) if raw.strip() else DEFAULT_PERIOD_HOURS
    if hours <= 0:
        raise ValueError(f"CARVEOUT_RETRAIN_HOURS must be positive, got {raw!r}")
    return int(hours * HOUR_MS)


def retrain_due(cell: Cell, now: int, period: int) -> bool:
    trained_at = 0
    for path in artefact.versions(cell):
        try:
            trained_at = artefact.read_manifest(path).trained_at_ms
            break
        except (ArtefactRefused, OSError, ValueError, KeyError):
            continue  # a damaged version does not count as a model
    if trained_at and now - trained_at < period:
        return False
    with cell.store.connect() as conn:
        newer = conn.execute(
            sa.select(EVENTS.c.id)
            .where(EVENTS.c.kind == "watch", EVENTS.c.created_at > trained_at)
            .limit(1)
        ).first()
    return newer is not None
