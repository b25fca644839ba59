"""Interaction events: batch ingest into the cell's event log, and per-video counters."""

from carveout.events.models import EventIn, EventKind
from carveout.events.service import MAX_BATCH, record, record_in
from carveout.events.stats import (
    STATS_COLUMNS,
    Recount,
    recompute_all,
    recompute_in_steps,
    watch_ratio,
)

__all__ = [
    "MAX_BATCH",
    "STATS_COLUMNS",
    "EventIn",
    "EventKind",
    "Recount",
    "recompute_all",
    "recompute_in_steps",
    "record",
    "record_in",
    "watch_ratio",
]
