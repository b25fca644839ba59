"""video_stats: per-video counters folded in as events arrive, or recomputed from the event log."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carveout.datamap import TABLES
from carveout.events.models import COUNTER, EventKind
from carveout.storage import Store

STATS = TABLES["video_stats"]
EVENTS = TABLES["events"]
VIDEOS = TABLES["videos"]

# Popularity is the mean watch ratio shrunk towards PRIOR with the weight of SHRINK_M watches,
# so a video with one lucky view does not top the feed. Stored (and indexed) so the simple feed
# reads videos in popularity order instead of scoring the whole catalogue per request.
SHRINK_M = 10.0
PRIOR = 1.0

_COUNTERS = ("impressions", "watches", "watched_ms", "likes", "comments", "shares", "skips")
# The columns a rebuild writes, in the order of its rows.
STATS_COLUMNS = (
    "video_id",
    "domicile",
    "impressions",
    "watches",
    "watched_ms",
    "watch_ratio_sum",
    "likes",
    "comments",
    "shares",
    "skips",
    "popularity",
    "updated_at",
)


@dataclass
class StatsDelta:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    watch_ratio_sum: float = 0.0


def watch_ratio(watched_ms: int | None, duration_ms: int) -> float:
    if not watched_ms or duration_ms <= 0:
        return 0.0
    return watched_ms / duration_ms


def deltas(
    events: Iterable[Mapping[str, Any]], durations: Mapping[str, int]
) -> dict[str, StatsDelta]:
    out: dict[str, StatsDelta] = {}
    for ev in events:
        delta = out.setdefault(ev["video_id"], StatsDelta())
        kind = EventKind(ev["kind"])
        delta.counts[COUNTER[kind]] += 1
        if kind is EventKind.WATCH:
            delta.counts["watched_ms"] += int(ev.get("watched_ms") or 0)
            delta.watch_ratio_sum += watch_ratio(ev.get("watched_ms"), durations[ev["video_id"]])
    return out


def _add_counters(dialect: str) -> sa.Insert:
    """One INSERT ... ON CONFLICT DO UPDATE: a video's counters created with the deltas, or the
    deltas added to its row. Executed once per batch (an executemany, pipelined by psycopg)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(STATS)
    new = insert.excluded
    added: dict[str, Any] = {c: STATS.c[c] + new[c] for c in _COUNTERS}
    added["watch_ratio_sum"] = STATS.c.watch_ratio_sum + new.watch_ratio_sum
    added["popularity"] = (STATS.c.watch_ratio_sum + new.watch_ratio_sum + SHRINK_M * PRIOR) / (
        STATS.c.watches + new.watches + SHRINK_M
    )
    added["updated_at"] = new.updated_at
    upsert: sa.Insert = insert.on_conflict_do_update(index_elements=[STATS.c.video_id], set_=added)
    return upsert


# Built once per dialect: constructing the statement cost more than running it.
_ADD_COUNTERS = {name: _add_counters(name) for name in ("postgresql", "sqlite")}


def apply_deltas(
    conn: sa.Connection,
    changes: Mapping[str, StatsDelta],
    domiciles: Mapping[str, str],
    now: int,
) -> None:
    """Add counters inside the caller's transaction (the one that stored the events).

    Rows are written in video-id order so that concurrent batches lock them in the same order
    and cannot deadlock on PostgreSQL. Uploads and loads create each video's zero row; a video
    without one (written outside those paths, or right after a carve's cutover, before the
    target's counters are rebuilt) gets it here, starting from these deltas: one statement
    either way, and two writers that both find the row missing cannot fail each other."""
    if not changes:
        return
    params = []
    for vid in sorted(changes):
        delta = changes[vid]
        row: dict[str, Any] = {"video_id": vid, "domicile": domiciles[vid], **delta.counts}
        row["watch_ratio_sum"] = delta.watch_ratio_sum
        # Only for a video without a counter row (an existing row's popularity is computed from
        # its own counters in SQL). Negative deltas (an erasure's) never create a row sensibly;
        # they must not divide by zero either: such a row gets the prior.
        watches = delta.counts["watches"]
        row["popularity"] = (
            popularity(delta.watch_ratio_sum, watches) if watches + SHRINK_M > 0 else PRIOR
        )
        row["updated_at"] = now
        params.append(row)
    conn.execute(_ADD_COUNTERS[conn.dialect.name], params)


def popularity(watch_ratio_sum: float, watches: int) -> float:
    return (watch_ratio_sum + SHRINK_M * PRIOR) / (watches + SHRINK_M)


def zero_row(video_id: str, domicile: str, now: int) -> dict[str, Any]:
    """The counters of a video nobody has seen yet."""
    return {
        "video_id": video_id,
        "domicile": domicile,
        **dict.fromkeys(_COUNTERS, 0),
        "watch_ratio_sum": 0.0,
        "popularity": popularity(0.0, 0),
        "updated_at": now,
    }


def recompute_all(store: Store, now: int, videos: Collection[str] | None = None) -> int:
    """Rebuild video_stats from the cell's own event log (after a load, or a carve); only the
    counters of `videos` when given (a carve's cutover: the videos its last changes touched)."""
    dur = sa.cast(sa.func.nullif(VIDEOS.c.duration_ms, 0), sa.Double)
    is_watch = EVENTS.c.kind == EventKind.WATCH.value

    def count(kind: EventKind) -> sa.ColumnElement[Any]:
        return sa.func.coalesce(sa.func.sum(sa.case((EVENTS.c.kind == kind.value, 1), else_=0)), 0)

    agg = (
        sa.select(
            VIDEOS.c.id,
            VIDEOS.c.domicile,
            count(EventKind.IMPRESSION),
            count(EventKind.WATCH),
            sa.func.coalesce(sa.func.sum(sa.case((is_watch, EVENTS.c.watched_ms), else_=0)), 0),
            sa.func.coalesce(
                sa.func.sum(sa.case((is_watch, EVENTS.c.watched_ms / dur), else_=0.0)), 0.0
            ),
            count(EventKind.LIKE),
            count(EventKind.COMMENT),
            count(EventKind.SHARE),
            count(EventKind.SKIP),
            sa.literal(0.0, sa.Double),
            sa.literal(now, sa.BigInteger),
        )
        .select_from(VIDEOS.outerjoin(EVENTS, EVENTS.c.video_id == VIDEOS.c.id))
        .group_by(VIDEOS.c.id, VIDEOS.c.domicile)
    )
    cols = list(STATS_COLUMNS)
    with store.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Writers' counter updates wait for the rebuild instead of racing its DELETE and
            # INSERT: an event committed before it is counted by it, one after it adds its delta.
            conn.exec_driver_sql("LOCK TABLE video_stats IN SHARE ROW EXCLUSIVE MODE")
        parts = [None] if videos is None else _chunks(sorted(videos))
        for part in parts:
            delete, select, update = sa.delete(STATS), agg, sa.update(STATS)
            if part is not None:
                delete = delete.where(STATS.c.video_id.in_(part))
                select = agg.where(VIDEOS.c.id.in_(part))
                update = update.where(STATS.c.video_id.in_(part))
            conn.execute(delete)
            conn.execute(sa.insert(STATS).from_select(cols, select))
            conn.execute(
                update.values(
                    popularity=(STATS.c.watch_ratio_sum + SHRINK_M * PRIOR)
                    / (STATS.c.watches + SHRINK_M)
                )
            )
        return int(conn.execute(sa.select(sa.func.count()).select_from(STATS)).scalar_one())


class Recount:
    """video_stats as `recompute_all` builds them, counted from rows as they pass by (a transfer
    bundle's import parses every row anyway): the server's aggregation over every loaded event
    was 0.2 s of an import's tail. The same definition, value for value: every video's counters
    over its events, a watch's ratio its watched_ms over the video's duration (none when either
    is missing or the duration is 0), events of other videos left out. Sums of ratios may differ
    from the server's in the last bits (another order of addition)."""

    def __init__(self) -> None:
        self.videos: dict[str, tuple[str, Any]] = {}  # id -> (domicile, duration_ms)
        self.kinds: Counter[tuple[str, str]] = Counter()  # (video_id, kind) -> events
        self.watched: dict[str, list[int]] = {}  # each watch's watched_ms, in order

    def add(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
        """Rows of `table` (videos and events count; others are ignored), each a sequence of
        values in `columns`' order."""
        if table == "videos":
            at = [columns.index(c) for c in ("id", "domicile", "duration_ms")]
            for r in rows:
                self.videos[r[at[0]]] = (r[at[1]], r[at[2]])
        elif table == "events":
            vid, kind, ms = (columns.index(c) for c in ("video_id", "kind", "watched_ms"))
            # Counted in C (itemgetter, Counter): a Python loop over every event cost more.
            self.kinds.update(map(operator.itemgetter(vid, kind), rows))
            watch = EventKind.WATCH.value
            for r in rows:
                if r[kind] == watch and r[ms] is not None:
                    self.watched.setdefault(r[vid], []).append(r[ms])

    def rows(self, now: int) -> list[tuple[Any, ...]]:
        """Every video's counter row, in `STATS_COLUMNS` order."""
        out = []
        # The kinds' values read once: an enum member's .value is a property, and reading it
        # six times per video was a third of this function (17 ms -> 12 ms for 3,898 videos).
        kinds = [(kind.value, column) for kind, column in COUNTER.items()]
        for vid, (domicile, duration) in self.videos.items():
            n = {c: self.kinds.get((vid, k), 0) for k, c in kinds}
            watched = self.watched.get(vid, [])
            ratios = sum(w / float(duration) for w in watched) if duration else 0.0
            out.append(
                (
                    vid,
                    domicile,
                    n["impressions"],
                    n["watches"],
                    sum(watched),
                    ratios,
                    n["likes"],
                    n["comments"],
                    n["shares"],
                    n["skips"],
                    popularity(ratios, n["watches"]),
                    now,
                )
            )
        return out


def recompute_in_steps(store: Store, now: int, step: int = 500) -> int:
    """Every video's counters rebuilt like `recompute_all`, but `step` videos per transaction,
    for a cell that serves meanwhile: each step holds the counters' lock (PostgreSQL) or the
    one writer's lock (SQLite) for its own videos' aggregation only, so writers wait for a
    step, not for the whole rebuild (the carve's purge: every staying video a carved user
    watched). Exact all the same: a write between steps adds its delta to a counter either
    already rebuilt or rebuilt later from the events, its own included."""
    with store.connect() as conn:
        ids = sorted(str(r[0]) for r in conn.execute(sa.select(VIDEOS.c.id)))
    for part in _chunks(ids, step):
        assert part is not None
        recompute_all(store, now, videos=part)
    with store.begin() as conn:
        # Counters of videos that are gone (recompute_all's full rebuild drops them too).
        conn.execute(sa.delete(STATS).where(~STATS.c.video_id.in_(sa.select(VIDEOS.c.id))))
        return int(conn.execute(sa.select(sa.func.count()).select_from(STATS)).scalar_one())


def _chunks(ids: list[str], size: int = 500) -> list[list[str] | None]:
    # IN lists within every backend's parameter limit.
    return [ids[i : i + size] for i in range(0, len(ids), size)]
