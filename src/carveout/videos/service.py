"""Upload, look up and list videos within one cell; media lands in the cell's blob store."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from carveout.accounts import User
from carveout.cells import Cell
from carveout.core import CarveoutError, Forbidden, InvalidInput, NotFound, new_id, now_ms
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import TABLES
from carveout.events.stats import zero_row
from carveout.storage import Store
from carveout.videos.media import probe
from carveout.videos.models import BlobRef, NewVideo, Video, VideoStatus

VIDEOS = TABLES["videos"]
BLOBS = TABLES["blobs"]
RESTRICTIONS = TABLES["video_restrictions"]
STATS = TABLES["video_stats"]
HASHTAG_RE = re.compile(r"^[\w]{1,100}$")


class UnavailableHere(CarveoutError):
    """The video exists but is restricted in the viewer's jurisdiction."""

    status = 451


class GuestReadOnly(CarveoutError):
    """A write to guest content: only its creator, in its origin cell, may change it."""

    status = 409


def check_new_video(new: NewVideo) -> NewVideo:
    if len(new.caption) > 2200:
        raise InvalidInput("caption longer than 2200 characters")
    if len(new.hashtags) > 30:
        raise InvalidInput("at most 30 hashtags")
    tags = [t.lstrip("#") for t in new.hashtags]
    bad = [t for t in tags if not HASHTAG_RE.match(t)]
    if bad:
        raise InvalidInput(f"invalid hashtag {bad[0]!r}: letters, digits and '_' only")
    if len(new.category) > 100:
        raise InvalidInput("category longer than 100 characters")
    return NewVideo(caption=new.caption, hashtags=tags, category=new.category.strip())


def upload(
    cell: Cell,
    creator: User,
    new: NewVideo,
    path: Path,
    *,
    status: VideoStatus = VideoStatus.PUBLISHED,
    on_stored: Callable[[sa.Connection, Video], None] | None = None,
) -> Video:
    """Validate metadata and media, store the blob, then write blob and video rows in one
    transaction. If the transaction fails, a blob file this call created is removed again.
    `on_stored` runs inside that transaction (moderation writes its decision there, so a video
    and the decision about it are stored together or not at all)."""
    new = check_new_video(new)
    info = probe(path)
    sha, size, created = cell.blobs.put_file(path)
    now = now_ms()
    video_id = new_id()
    video_row = {
        "id": video_id,
        "domicile": creator.domicile,
        "creator_id": creator.id,
        "caption": new.caption,
        "hashtags": json.dumps(new.hashtags, ensure_ascii=False),
        "category": new.category,
        "duration_ms": info.duration_ms,
        "width": info.width,
        "height": info.height,
        "blob_id": "",
        "status": status.value,
        "external_ref": None,
        "created_at": now,
    }
    try:
        with cell.store.begin() as conn:
            blob_id = conn.execute(
                sa.select(BLOBS.c.id).where(
                    BLOBS.c.sha256 == sha, BLOBS.c.domicile == creator.domicile
                )
            ).scalar()
            if blob_id is None:
                blob_id = new_id()
                conn.execute(
                    sa.insert(BLOBS).values(
                        id=blob_id,
                        domicile=creator.domicile,
                        sha256=sha,
                        size_bytes=size,
                        content_type=info.content_type,
                        owner_id=creator.id,
                        created_at=now,
                    )
                )
            video_row["blob_id"] = blob_id
            conn.execute(sa.insert(VIDEOS).values(**video_row))
            # A zero counter row from the start: event ingest then only ever UPDATEs it.
            conn.execute(sa.insert(STATS).values(zero_row(video_id, creator.domicile, now)))
            if on_stored is not None:
                on_stored(conn, Video.from_row(video_row))
    except BaseException:
        if created:
            cell.blobs.delete(sha)
        raise
    return Video.from_row(video_row)


def restricted_in(store: Store, video_id: str) -> set[str]:
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(RESTRICTIONS.c.jurisdiction).where(RESTRICTIONS.c.video_id == video_id)
        )
        return {r.jurisdiction for r in rows}


# The video and whether it is restricted in the viewer's jurisdiction, in one statement.
_VIDEO_FOR_VIEWER = sa.select(
    VIDEOS,
    sa.exists()
    .where(
        RESTRICTIONS.c.video_id == VIDEOS.c.id,
        RESTRICTIONS.c.jurisdiction == sa.bindparam("jurisdiction"),
    )
    .label("restricted_here"),
).where(VIDEOS.c.id == sa.bindparam("video_id"))


def get_video(store: Store, video_id: str, viewer: User) -> Video:
    """A video the viewer may see: published and not restricted in the viewer's jurisdiction.
    Creators always see their own uploads."""
    with store.read() as conn:
        return get_video_in(conn, video_id, viewer)


def get_video_in(conn: sa.Connection, video_id: str, viewer: User) -> Video:
    """get_video on the caller's connection (inside a write's transaction, say)."""
    row = conn.execute(
        _VIDEO_FOR_VIEWER, {"video_id": video_id, "jurisdiction": viewer.domicile}
    ).first()
    if row is None:
        raise NotFound(f"no video {video_id}")
    video = Video.from_row(row)
    if video.creator_id == viewer.id:
        return video
    if video.status != VideoStatus.PUBLISHED.value:
        raise NotFound(f"no video {video_id}")
    if row.restricted_here:
        raise UnavailableHere(f"video {video_id} is not available in {viewer.domicile}")
    return video


def blob_of(cell: Cell, video: Video) -> tuple[Path, BlobRef]:
    with cell.store.connect() as conn:
        row = conn.execute(sa.select(BLOBS).where(BLOBS.c.id == video.blob_id)).first()
    if row is None:
        raise NotFound(f"video {video.id} has no media")
    return cell.blobs.local_path(row.sha256), BlobRef(row.sha256, row.content_type, row.size_bytes)


def list_by_creator(
    store: Store, creator_id: str, viewer: User, cursor: str | None, limit: int
) -> Page[Video]:
    limit = check_limit(limit)
    after = decode_cursor(cursor, "videos")
    stmt = sa.select(VIDEOS).where(VIDEOS.c.creator_id == creator_id)
    if creator_id != viewer.id:
        stmt = stmt.where(VIDEOS.c.status == VideoStatus.PUBLISHED.value)
    if after:
        stmt = stmt.where(VIDEOS.c.id < after[0])
    # Ids are UUIDv7, so id order is upload order: newest first.
    stmt = stmt.order_by(VIDEOS.c.id.desc()).limit(limit + 1)
    with store.connect() as conn:
        rows = conn.execute(stmt).all()
    items = [Video.from_row(r) for r in rows[:limit]]
    nxt = encode_cursor("videos", items[-1].id) if len(rows) > limit else None
    return Page(items, nxt)


def exists(store: Store, video_id: str) -> bool:
    with store.connect() as conn:
        return (
            conn.execute(sa.select(VIDEOS.c.id).where(VIDEOS.c.id == video_id)).first() is not None
        )


def delete_video(cell: Cell, video_id: str, user: User) -> None:
    """The creator deletes their video: the video, its counters, restrictions, its blob row (if
    no other video uses it) in one transaction, then the file if nothing names it. Others'
    likes, comments and events stay as their data, with the id as an opaque reference.
    Guest content (a copy from another cell) is refused: its creator deletes it where it lives,
    and the next exchange sync withdraws the copy."""
    with cell.store.begin() as conn:
        row = conn.execute(sa.select(VIDEOS).where(VIDEOS.c.id == video_id)).first()
        if row is None:
            raise NotFound(f"no video {video_id}")
        video = Video.from_row(row)
        if video.origin_cell is not None:
            raise GuestReadOnly(
                f"video {video_id} is guest content from cell {video.origin_cell!r}: read-only "
                "here; its creator changes or deletes it in that cell"
            )
        if video.creator_id != user.id:
            if video.status != VideoStatus.PUBLISHED.value:
                raise NotFound(f"no video {video_id}")
            raise Forbidden(f"video {video_id} is not yours to delete")
        conn.execute(sa.delete(RESTRICTIONS).where(RESTRICTIONS.c.video_id == video_id))
        conn.execute(sa.delete(STATS).where(STATS.c.video_id == video_id))
        conn.execute(sa.delete(VIDEOS).where(VIDEOS.c.id == video_id))
        blob = conn.execute(sa.select(BLOBS).where(BLOBS.c.id == video.blob_id)).first()
        sha = None
        if blob is not None:
            used = conn.execute(
                sa.select(VIDEOS.c.id).where(VIDEOS.c.blob_id == blob.id).limit(1)
            ).first()
            if used is None:
                conn.execute(sa.delete(BLOBS).where(BLOBS.c.id == blob.id))
                named = conn.execute(
                    sa.select(BLOBS.c.id).where(BLOBS.c.sha256 == blob.sha256).limit(1)
                ).first()
                sha = blob.sha256 if named is None else None
    if sha is not None:
        cell.blobs.delete(sha)
