"""Follow and unfollow within a cell; both are idempotent."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from carveout.accounts import User, open_users, require_user
from carveout.cells import Cell
from carveout.core import InvalidInput, new_id, now_ms
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import TABLES
from carveout.social.models import ProfileCounts
from carveout.storage import Store

FOLLOWS = TABLES["follows"]
USERS = TABLES["users"]
VIDEOS = TABLES["videos"]


def _follow_active() -> dict[str, sa.Insert]:
    """Per dialect: the follow, if the followee is an active user here and not yet followed,
    as one INSERT ... SELECT (no row: unknown or erased followee, or an existing follow)."""
    values = sa.select(
        sa.bindparam("id", type_=FOLLOWS.c.id.type),
        sa.bindparam("domicile", type_=FOLLOWS.c.domicile.type),
        sa.bindparam("follower_id", type_=FOLLOWS.c.follower_id.type),
        USERS.c.id,
        sa.bindparam("created_at", type_=FOLLOWS.c.created_at.type),
    ).where(USERS.c.id == sa.bindparam("followee_id"), USERS.c.status == "active")
    cols = ["id", "domicile", "follower_id", "followee_id", "created_at"]
    return {
        name: dialect.insert(FOLLOWS)
        .from_select(cols, values)
        .on_conflict_do_nothing(index_elements=[FOLLOWS.c.follower_id, FOLLOWS.c.followee_id])
        .returning(FOLLOWS.c.id)
        for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
    }


_FOLLOW = _follow_active()


def follow(store: Store, follower: User, followee_id: str) -> bool:
    """True when a new follow was written, False when it already existed."""
    if followee_id == follower.id:
        raise InvalidInput("you cannot follow yourself")
    with store.begin() as conn:
        params = {
            "id": new_id(),
            "domicile": follower.domicile,
            "follower_id": follower.id,
            "followee_id": followee_id,
            "created_at": now_ms(),
        }
        if conn.execute(_FOLLOW[conn.dialect.name], params).first() is not None:
            return True
    require_user(store, followee_id)  # nothing written: NotFound for unknown users
    return False


def unfollow(store: Store, follower: User, followee_id: str) -> bool:
    require_user(store, followee_id)
    with store.begin() as conn:
        deleted = conn.execute(
            sa.delete(FOLLOWS).where(
                FOLLOWS.c.follower_id == follower.id, FOLLOWS.c.followee_id == followee_id
            )
        ).rowcount
    return bool(deleted)


def _list(
    cell: Cell, user_id: str, *, followers: bool, cursor: str | None, limit: int
) -> Page[User]:
    limit = check_limit(limit)
    kind = "followers" if followers else "following"
    after = decode_cursor(cursor, kind)
    require_user(cell.store, user_id)
    mine, theirs = (
        (FOLLOWS.c.followee_id, FOLLOWS.c.follower_id)
        if followers
        else (FOLLOWS.c.follower_id, FOLLOWS.c.followee_id)
    )
    stmt = (
        sa.select(USERS, FOLLOWS.c.id.label("follow_id"))
        .join(FOLLOWS, theirs == USERS.c.id)
        .where(mine == user_id, USERS.c.status == "active")
    )
    if after:
        stmt = stmt.where(FOLLOWS.c.id < after[0])
    stmt = stmt.order_by(FOLLOWS.c.id.desc()).limit(limit + 1)
    with cell.store.connect() as conn:
        rows = conn.execute(stmt).all()
    items = open_users(cell.vault, rows[:limit])
    nxt = encode_cursor(kind, rows[limit - 1].follow_id) if len(rows) > limit else None
    return Page(items, nxt)


def followers(cell: Cell, user_id: str, cursor: str | None, limit: int) -> Page[User]:
    return _list(cell, user_id, followers=True, cursor=cursor, limit=limit)


def following(cell: Cell, user_id: str, cursor: str | None, limit: int) -> Page[User]:
    return _list(cell, user_id, followers=False, cursor=cursor, limit=limit)


def counts(store: Store, user_id: str) -> ProfileCounts:
    with store.connect() as conn:

        def n(stmt: sa.Select[Any]) -> int:
            return int(conn.execute(stmt).scalar_one())

        count = sa.func.count()
        return ProfileCounts(
            followers=n(sa.select(count).where(FOLLOWS.c.followee_id == user_id)),
            following=n(sa.select(count).where(FOLLOWS.c.follower_id == user_id)),
            videos=n(
                sa.select(count).where(
                    VIDEOS.c.creator_id == user_id, VIDEOS.c.status == "published"
                )
            ),
        )
