"""The sending side: which videos a cell offers to the exchange, as public fields only."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.datamap import DATA_MAP, TABLES
from carveout.exchange.models import OriginVideo
from carveout.videos import VideoStatus

VIDEOS, BLOBS, USERS = TABLES["videos"], TABLES["blobs"], TABLES["users"]
IN_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit


def pseudonym(origin: Cell, creator_id: str) -> str:
    """The creator id a guest copy carries: a keyed hash under the origin's lookup key, so the
    receiver can group a creator's guest videos but cannot turn it back into the origin's user id
    (or match it against anything the origin publishes)."""
    digest = origin.vault.lookup(f"exchange-creator:{origin.name}:{creator_id}")
    return str(uuid.UUID(hex=digest[:32]))


def _offerable() -> sa.Select[tuple[object, ...]]:
    # Published, the origin's own (a guest copy is never passed on: only the cell holding the
    # creator speaks for a video), and by an active creator whose handle is still readable.
    return (
        sa.select(
            VIDEOS.c.id,
            VIDEOS.c.domicile,
            VIDEOS.c.creator_id,
            VIDEOS.c.caption,
            VIDEOS.c.hashtags,
            VIDEOS.c.category,
            VIDEOS.c.duration_ms,
            VIDEOS.c.width,
            VIDEOS.c.height,
            BLOBS.c.sha256,
            BLOBS.c.content_type,
            BLOBS.c.size_bytes,
            USERS.c.id.label("user_id"),
            USERS.c.handle,
        )
        .select_from(
            VIDEOS.join(BLOBS, BLOBS.c.id == VIDEOS.c.blob_id).join(
                USERS, USERS.c.id == VIDEOS.c.creator_id
            )
        )
        .where(
            VIDEOS.c.status == VideoStatus.PUBLISHED.value,
            VIDEOS.c.origin_cell.is_(None),
            USERS.c.status == "active",
            USERS.c.handle.is_not(None),
        )
        .order_by(VIDEOS.c.id)
    )


def _chunks(ids: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(ids)
    for i in range(0, len(ordered), IN_CHUNK):
        yield ordered[i : i + IN_CHUNK]


def offered(origin: Cell, only: Collection[str] | None = None) -> list[OriginVideo]:
    """The videos the origin offers now (all of them, or those among `only`), oldest first.
    Handles are sealed in the origin: they are opened here, with the origin's keys, and a
    creator whose key is gone (erased) offers nothing."""
    raw: list[dict[str, object]] = []
    with origin.store.connect() as conn:
        if only is None:
            raw = [dict(r._mapping) for r in conn.execute(_offerable())]
        else:
            for chunk in _chunks(only):
                stmt = _offerable().where(VIDEOS.c.id.in_(chunk))
                raw += [dict(r._mapping) for r in conn.execute(stmt)]
    users = DATA_MAP.table("users")
    handles = {
        str(u["id"]): u["handle"]
        for u in origin.vault.open_rows(
            users, [{"id": r["user_id"], "handle": r["handle"]} for r in raw]
        )
    }
    out = []
    for r in raw:
        handle = handles.get(str(r["user_id"]))
        if not handle:
            continue
        out.append(
            OriginVideo(
                id=str(r["id"]),
                domicile=str(r["domicile"]),
                creator_pseudonym=pseudonym(origin, str(r["creator_id"])),
                creator_handle=str(handle),
                caption=str(r["caption"]),
                hashtags=str(r["hashtags"]),
                category=str(r["category"]),
                duration_ms=int(str(r["duration_ms"])),
                width=int(str(r["width"])),
                height=int(str(r["height"])),
                sha256=str(r["sha256"]),
                content_type=str(r["content_type"]),
                size_bytes=int(str(r["size_bytes"])),
            )
        )
    out.sort(key=lambda v: v.id)
    return out


def why_gone(origin: Cell, ids: Collection[str]) -> dict[str, str]:
    """For guest copies the origin no longer offers: why (the withdrawal reason logged)."""
    status: dict[str, tuple[str, str | None]] = {}
    with origin.store.connect() as conn:
        for chunk in _chunks(ids):
            stmt = (
                sa.select(VIDEOS.c.id, VIDEOS.c.status, USERS.c.status.label("creator"))
                .select_from(VIDEOS.outerjoin(USERS, USERS.c.id == VIDEOS.c.creator_id))
                .where(VIDEOS.c.id.in_(chunk))
            )
            status.update({r.id: (r.status, r.creator) for r in conn.execute(stmt)})
    out = {}
    for vid in ids:
        if vid not in status:
            out[vid] = "deleted at the origin"
        elif status[vid][1] != "active":
            out[vid] = "creator erased at the origin"
        else:
            out[vid] = f"{status[vid][0]} at the origin"
    return out
