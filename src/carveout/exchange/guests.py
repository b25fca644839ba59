"""Guest content as the receiving cell reads it: which rows are guest copies, and their origin."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.datamap import TABLES
from carveout.exchange import handles
from carveout.videos import Video

GUESTS, VIDEOS = TABLES["guest_videos"], TABLES["videos"]

# The rows a guest copy consists of in the receiving cell, by the column naming the copy: they
# carry the origin's domicile (the video's), so a leak scan must tell them from foreign data.
GUEST_LINKS = {
    "videos": "id",
    "video_stats": "video_id",
    "video_restrictions": "video_id",
    "moderation_decisions": "target_id",
    "moderation_reviews": "target_id",
}


# Which rows are parts of a guest copy this cell holds, whatever its origin: a row of `table`
# whose `column` equals guest_videos' `guest_column` for an entry whose origin_domicile is the
# row's domicile (a guest copy's rows all carry its origin's domicile). The guest blob row is
# found by its file (one row per file and domicile, shared by the copies of that file); a
# videos row must also say it is guest content. A carve's seal lets exactly these rows through
# (carve.capture writes the same rule as trigger SQL), and its purge and verify leave them out.
GUEST_PARTS = {
    "blobs": ("sha256", "sha256"),
    "videos": ("id", "video_id"),
    "video_stats": ("video_id", "video_id"),
    "video_restrictions": ("video_id", "video_id"),
    "moderation_decisions": ("target_id", "video_id"),
    "moderation_reviews": ("target_id", "video_id"),
    # The staff-read log's entries about a guest copy's creator (a moderator listing reports on
    # the copy), filed under the content's domicile like the decisions about it. The log is
    # append-only: an entry outlives the creator's last copy here (see docs/exchange.md).
    "staff_access_log": ("subject_id", "creator_id"),
}


def guest_part(table: str) -> sa.ColumnElement[bool] | None:
    """Rows of `table` that are parts of a guest copy held here, from any origin (None: the
    table holds no part of a guest copy). Unlike guest_row_filter this does not ask whether
    the policy still allows the origin: it is what the cell's own bookkeeping wrote."""
    if table not in GUEST_PARTS:
        return None
    column, guest_column = GUEST_PARTS[table]
    tbl = TABLES[table]
    cond = sa.exists().where(
        GUESTS.c[guest_column] == tbl.c[column], GUESTS.c.origin_domicile == tbl.c.domicile
    )
    return sa.and_(tbl.c.origin_cell.is_not(None), cond) if table == "videos" else cond


def guest_part_sql(table: str, row: str) -> str | None:
    """guest_part as SQL text about one row, e.g. `NEW` in a trigger (`row` is inlined)."""
    if table not in GUEST_PARTS:
        return None
    column, guest_column = GUEST_PARTS[table]
    cond = (
        f"EXISTS (SELECT 1 FROM guest_videos g WHERE g.{guest_column} = {row}.{column} "
        f"AND g.origin_domicile = {row}.domicile)"
    )
    return f"({row}.origin_cell IS NOT NULL AND {cond})" if table == "videos" else f"({cond})"


@dataclass(frozen=True)
class Guest:
    video_id: str
    origin_cell: str
    origin_domicile: str
    creator_id: str  # the pseudonym
    creator_handle: str | None  # None once the handle's key is destroyed
    sha256: str
    size_bytes: int
    visibility: str
    synced_at: int


def _guests(cell: Cell, rows: list[Any]) -> list[Guest]:
    opened = handles.open_many(cell, [(m["creator_id"], m["creator_handle"]) for m in rows])
    return [
        Guest(
            video_id=m["video_id"],
            origin_cell=m["origin_cell"],
            origin_domicile=m["origin_domicile"],
            creator_id=m["creator_id"],
            creator_handle=handle,
            sha256=m["sha256"],
            size_bytes=m["size_bytes"],
            visibility=m["visibility"],
            synced_at=m["synced_at"],
        )
        for m, handle in zip(rows, opened, strict=True)
    ]


def guest(cell: Cell, video_id: str) -> Guest | None:
    with cell.store.connect() as conn:
        row = conn.execute(sa.select(GUESTS).where(GUESTS.c.video_id == video_id)).first()
    return None if row is None else _guests(cell, [row._mapping])[0]


def guests(cell: Cell, origin: str | None = None) -> list[Guest]:
    stmt = sa.select(GUESTS).order_by(GUESTS.c.video_id)
    if origin is not None:
        stmt = stmt.where(GUESTS.c.origin_cell == origin)
    with cell.store.connect() as conn:
        rows = [r._mapping for r in conn.execute(stmt)]
    return _guests(cell, rows)


def guest_row_filter(table: str, origins: Collection[str]) -> sa.ColumnElement[bool] | None:
    """Rows of `table` that belong to a guest copy from one of `origins` (None: the table
    holds no part of a guest copy). A row claiming to be a guest copy without a guest_videos
    entry from an allowed origin matches nothing."""
    ids = sa.select(GUESTS.c.video_id).where(GUESTS.c.origin_cell.in_(list(origins)))
    tbl = TABLES[table]
    if table == "videos":
        return sa.and_(tbl.c.id.in_(ids), tbl.c.origin_cell.in_(list(origins)))
    if table == "blobs":
        return tbl.c.id.in_(
            sa.select(VIDEOS.c.blob_id).where(
                VIDEOS.c.id.in_(ids), VIDEOS.c.origin_cell.in_(list(origins))
            )
        )
    if table == "staff_access_log":  # entries about a guest creator (see GUEST_PARTS)
        creators = sa.select(GUESTS.c.creator_id).where(GUESTS.c.origin_cell.in_(list(origins)))
        return tbl.c.subject_id.in_(creators)
    column = GUEST_LINKS.get(table)
    return None if column is None else tbl.c[column].in_(ids)


def foreign_guest_rows(
    conn: sa.Connection, table: str, codes: Collection[str], origins: Collection[str]
) -> int:
    """How many of the table's rows outside `codes` are parts of allowed guest copies."""
    if not origins:  # before building the filter: the leak scan asks for every table
        return 0
    cond = guest_row_filter(table, origins)
    if cond is None:
        return 0
    tbl = TABLES[table]
    stmt = sa.select(sa.func.count()).select_from(tbl).where(~tbl.c.domicile.in_(list(codes)), cond)
    return int(conn.execute(stmt).scalar_one())


def handle_of(cell: Cell, video: Video) -> str | None:
    """The foreign creator's public handle for a guest copy (None for the cell's own videos,
    whose creators have profiles here)."""
    if video.origin_cell is None:
        return None
    g = guest(cell, video.id)
    return g.creator_handle if g is not None else None
