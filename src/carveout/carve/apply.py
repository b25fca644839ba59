"""STEP 5 catch-up: apply captured changes to the target, batch by batch, in capture order.

Each batch re-syncs the rows it names and advances `applied_seq` in the same target
transaction. PostgreSQL sequences can commit out of order, so a gap in seq may be a change still
in flight: catch-up stops at a young gap and passes it once it is old (a rolled-back write) or
once the source is sealed (no writer left)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from carveout.carve import state
from carveout.carve.sync import copy_blob_files, read_rows, write_rows
from carveout.cells import Cell
from carveout.datamap import DATA_MAP, TABLES

CHANGES = TABLES["carve_changes"]
BATCH = 5000
GAP_PATIENCE_S = 5.0


@dataclass
class ApplyStats:
    changes: int = 0
    rows_synced: int = 0
    batches: int = 0
    _gaps: dict[int, float] = field(default_factory=dict)


def applied_seq(target: Cell) -> int:
    with target.store.connect() as conn:
        return int(state.get(conn, "applied_seq", 0))


def lag(source: Cell, target: Cell) -> int:
    with source.store.connect() as conn:
        head = conn.execute(sa.select(sa.func.coalesce(sa.func.max(CHANGES.c.seq), 0))).scalar_one()
    return max(0, int(head) - applied_seq(target))


def _contiguous(seqs: list[int], start: int, stats: ApplyStats, sealed: bool) -> int:
    """How many of the (sorted) seqs can be applied without skipping a young gap."""
    expect = start + 1
    now = time.monotonic()
    for i, seq in enumerate(seqs):
        if seq != expect and not sealed:
            first_seen = stats._gaps.setdefault(expect, now)
            if now - first_seen < GAP_PATIENCE_S:
                return i
        expect = seq + 1
    return len(seqs)


def apply_batch(
    source: Cell, target: Cell, codes: tuple[str, ...], stats: ApplyStats, *, sealed: bool
) -> int:
    """Apply up to BATCH changes; return how many were applied (0: caught up)."""
    start = applied_seq(target)
    with source.store.connect() as conn:
        changes = conn.execute(
            sa.select(CHANGES.c.seq, CHANGES.c.table_name, CHANGES.c.row_pk)
            .where(CHANGES.c.seq > start)
            .order_by(CHANGES.c.seq)
            .limit(BATCH)
        ).all()
    take = _contiguous([c.seq for c in changes], start, stats, sealed)
    changes = changes[:take]
    if not changes:
        return 0
    keys: dict[str, list[str]] = {}
    for change in changes:
        keys.setdefault(change.table_name, [])
        if change.row_pk not in keys[change.table_name]:
            keys[change.table_name].append(change.row_pk)
    fresh: dict[str, list[dict[str, object]]] = {}
    with source.store.connect() as conn:
        for name, pks in keys.items():
            fresh[name] = read_rows(conn, DATA_MAP.table(name), pks, codes)
    for name, rows in fresh.items():
        table = DATA_MAP.table(name)
        if table.blob_columns:
            copy_blob_files(source, target, rows, table)
    with target.store.begin() as conn:
        for name, pks in keys.items():
            write_rows(conn, DATA_MAP.table(name), pks, fresh[name])
        state.put(conn, "applied_seq", changes[-1].seq)
    stats.changes += len(changes)
    stats.rows_synced += sum(len(p) for p in keys.values())
    stats.batches += 1
    return len(changes)


def catch_up(
    source: Cell,
    target: Cell,
    codes: tuple[str, ...],
    stats: ApplyStats,
    *,
    until_lag: int = 0,
    sealed: bool = False,
    max_seconds: float | None = None,
) -> None:
    """Apply until the lag is at most `until_lag` (0 with `sealed`: everything)."""
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    while True:
        applied = apply_batch(source, target, codes, stats, sealed=sealed)
        if sealed:
            if applied == 0:
                return
        elif lag(source, target) <= until_lag:
            return
        elif applied == 0:
            time.sleep(0.01)  # waiting for a young gap to fill
        if deadline is not None and time.monotonic() > deadline:
            return


def touched_videos(source: Cell, target: Cell, after_seq: int) -> set[str] | None:
    """The videos whose counters the changes applied after `after_seq` can have changed: new or
    removed videos, and the videos of new events. None (count them all again) when an event
    was updated or deleted: the video it was about is gone with it."""
    with source.store.connect() as conn:
        changes = conn.execute(
            sa.select(CHANGES.c.table_name, CHANGES.c.row_pk, CHANGES.c.op).where(
                CHANGES.c.seq > after_seq, CHANGES.c.table_name.in_(("videos", "events"))
            )
        ).all()
    if any(c.table_name == "events" and c.op != "insert" for c in changes):
        return None
    videos = {c.row_pk for c in changes if c.table_name == "videos"}
    events = sorted({c.row_pk for c in changes if c.table_name == "events"})
    table = TABLES["events"]
    with target.store.connect() as conn:
        for i in range(0, len(events), 500):
            part = events[i : i + 500]
            videos |= {
                r[0] for r in conn.execute(sa.select(table.c.video_id).where(table.c.id.in_(part)))
            }
    return videos
