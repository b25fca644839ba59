"""Likes and comments on videos the user may see; each also lands in the event log."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carveout import moderation
from carveout.accounts import User
from carveout.cells import Cell
from carveout.core import Forbidden, InvalidInput, NotFound, new_id, now_ms
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import DATA_MAP, TABLES
from carveout.events import EventKind, record_in
from carveout.social.models import Comment
from carveout.storage import Store
from carveout.videos import get_video, get_video_in

LIKES = TABLES["likes"]
COMMENTS = TABLES["comments"]
USERS = TABLES["users"]
COMMENTS_MAP, USERS_MAP = DATA_MAP.table("comments"), DATA_MAP.table("users")
MAX_COMMENT = 2000
SHOWN = frozenset({"visible", "restricted"})
OWN_ONLY = ("hidden", "restricted")


# A like unless the user already likes the video: one statement, which also settles two
# concurrent likes of the same video by the same user (the second inserts nothing).
_LIKE = {
    name: dialect.insert(LIKES)
    .on_conflict_do_nothing(index_elements=[LIKES.c.user_id, LIKES.c.video_id])
    .returning(LIKES.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def like(store: Store, user: User, video_id: str) -> bool:
    now = now_ms()
    with store.begin() as conn:
        video = get_video_in(conn, video_id, user)
        row = {
            "id": new_id(),
            "domicile": user.domicile,
            "user_id": user.id,
            "video_id": video_id,
            "created_at": now,
        }
        if conn.execute(_LIKE[conn.dialect.name], row).first() is None:
            return False
        record_in(
            conn,
            user,
            video_id,
            EventKind.LIKE,
            now,
            duration_ms=video.duration_ms,
            video_domicile=video.domicile,
        )
    return True


def unlike(store: Store, user: User, video_id: str) -> bool:
    get_video(store, video_id, user)
    with store.begin() as conn:
        deleted = conn.execute(
            sa.delete(LIKES).where(LIKES.c.user_id == user.id, LIKES.c.video_id == video_id)
        ).rowcount
    return bool(deleted)


def add_comment(cell: Cell, user: User, video_id: str, body: str) -> Comment:
    """Screen the comment with the cell's text moderation, then store it with the status the
    screening chose, its decision and review item (if any), and its event, in one transaction.
    Only a comment shown to others counts as a `comment` event."""
    text = body.strip()
    if not text:
        raise InvalidInput("comment body is empty")
    if len(text) > MAX_COMMENT:
        raise InvalidInput(f"comment longer than {MAX_COMMENT} characters")
    video = get_video(cell.store, video_id, user)
    key = cell.vault.keys.keys([user.id]).get(user.id)
    if key is None:
        raise NotFound(f"no user {user.id}")
    screening = moderation.screen_comment(cell, text)
    now = now_ms()
    comment_id = new_id()
    row = {
        "id": comment_id,
        "domicile": user.domicile,
        "user_id": user.id,
        "video_id": video_id,
        "body": cell.vault.seal_value(key, "comments", "body", user.id, text),
        "status": screening.status,
        "created_at": now,
    }
    with cell.store.begin() as conn:
        conn.execute(sa.insert(COMMENTS).values(**row))
        decision = moderation.record_comment_decision(
            conn,
            screening,
            comment_id=comment_id,
            domicile=user.domicile,
            author_id=user.id,
            posted_at=now,
        )
        if screening.status in SHOWN:
            record_in(
                conn,
                user,
                video_id,
                EventKind.COMMENT,
                now,
                duration_ms=video.duration_ms,
                video_domicile=video.domicile,
            )
    return Comment(
        comment_id,
        video_id,
        user.id,
        user.handle,
        text,
        now,
        screening.status,
        decision.id if decision is not None else None,
    )


def delete_comment(store: Store, user: User, comment_id: str) -> None:
    with store.begin() as conn:
        row = conn.execute(sa.select(COMMENTS).where(COMMENTS.c.id == comment_id)).first()
        if row is None or row.status == "removed":
            raise NotFound(f"no comment {comment_id}")
        if row.user_id != user.id:
            raise Forbidden("only the author can delete a comment")
        conn.execute(
            sa.update(COMMENTS).where(COMMENTS.c.id == comment_id).values(status="removed")
        )


def _shown_to(viewer: User) -> sa.ColumnElement[bool]:
    """Others see visible comments, and restricted ones outside the restriction's scope; the
    author also sees their own comments held for review or restricted. Removed: nobody."""
    return sa.or_(
        COMMENTS.c.status == "visible",
        sa.and_(
            COMMENTS.c.status == "restricted",
            ~moderation.comment_restricted_in(COMMENTS.c.id, viewer.domicile),
        ),
        sa.and_(COMMENTS.c.user_id == viewer.id, COMMENTS.c.status.in_(OWN_ONLY)),
    )


def comments(
    cell: Cell, viewer: User, video_id: str, cursor: str | None, limit: int
) -> Page[Comment]:
    limit = check_limit(limit)
    get_video(cell.store, video_id, viewer)
    after = decode_cursor(cursor, "comments")
    stmt = sa.select(COMMENTS).where(
        COMMENTS.c.video_id == video_id,
        _shown_to(viewer),
        COMMENTS.c.body.is_not(None),  # anonymised after the author's erasure
    )
    if after:
        stmt = stmt.where(COMMENTS.c.id > after[0])
    stmt = stmt.order_by(COMMENTS.c.id).limit(limit + 1)
    with cell.store.connect() as conn:
        rows = conn.execute(stmt).all()
        authors = {r.user_id for r in rows[:limit]}
        users = conn.execute(
            sa.select(USERS.c.id, USERS.c.handle).where(USERS.c.id.in_(authors))
        ).all()
    handles = {u["id"]: u["handle"] for u in cell.vault.open_rows(USERS_MAP, users)}
    opened = cell.vault.open_rows(COMMENTS_MAP, rows[:limit])
    items = [
        Comment(
            c["id"],
            c["video_id"],
            c["user_id"],
            handles[c["user_id"]],
            c["body"],
            c["created_at"],
            c["status"],
        )
        for c in opened
        if c["body"] is not None and handles.get(c["user_id"]) is not None
    ]
    nxt = encode_cursor("comments", rows[limit - 1].id) if len(rows) > limit else None
    return Page(items, nxt)
