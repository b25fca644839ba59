"""The carve's seal and guest copies, on each backend: a row of the carved jurisdictions passes
only as a part of a guest copy the cell holds (exchange.GUEST_PARTS); every other write of them
is refused by the database itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from carveout.carve import is_moved_error
from carveout.carve.capture import install_seal, purging, remove_triggers
from carveout.carve.purge import of_j
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.storage import Store

USERS, VIDEOS, BLOBS = TABLES["users"], TABLES["videos"], TABLES["blobs"]
GUESTS, DECISIONS = TABLES["guest_videos"], TABLES["moderation_decisions"]
REVIEWS, RESTRICTIONS = TABLES["moderation_reviews"], TABLES["video_restrictions"]
J = ("CA", "US")


def _user(domicile: str) -> dict[str, Any]:
    return {
        "id": new_id(),
        "domicile": domicile,
        "password_hash": "",
        "status": "active",
        "created_at": now_ms(),
    }


def _guest(video_id: str, sha: str, domicile: str = "US") -> dict[str, Any]:
    return {
        "video_id": video_id,
        "origin_cell": "na",
        "origin_domicile": domicile,
        "creator_id": new_id(),
        "creator_handle": "sealed",
        "sha256": sha,
        "size_bytes": 1,
        "visibility": "published",
        "reasons": "{}",
        "created_at": now_ms(),
        "synced_at": now_ms(),
    }


def _blob(blob_id: str, sha: str, domicile: str = "US") -> dict[str, Any]:
    return {
        "id": blob_id,
        "domicile": domicile,
        "sha256": sha,
        "size_bytes": 1,
        "content_type": "video/mp4",
        "owner_id": new_id(),
        "created_at": now_ms(),
    }


def _video(video_id: str, blob_id: str, origin: str | None, domicile: str = "US") -> dict[str, Any]:
    return {
        "id": video_id,
        "domicile": domicile,
        "creator_id": new_id(),
        "caption": "c",
        "hashtags": "[]",
        "category": "tests",
        "duration_ms": 1000,
        "width": 8,
        "height": 8,
        "blob_id": blob_id,
        "status": "published",
        "external_ref": None,
        "created_at": now_ms(),
        "origin_cell": origin,
    }


def _decision(target_id: str, domicile: str = "US") -> dict[str, Any]:
    return {
        "id": new_id(),
        "domicile": domicile,
        "subject_id": new_id(),
        "target_kind": "video",
        "target_id": target_id,
        "visibility": "rejected",
        "ground": "terms",
        "rule": "local terms",
        "category": "STATEMENT_CATEGORY_NONE",
        "territorial_scope": "[]",
        "automated_detection": False,
        "automated_decision": False,
        "source": "reviewer",
        "facts": "f",
        "signals": "{}",
        "reviewer_id": None,
        "supersedes": None,
        "content_date": now_ms(),
        "created_at": now_ms(),
    }


def _review(target_id: str, domicile: str = "US") -> dict[str, Any]:
    return {
        "id": new_id(),
        "domicile": domicile,
        "subject_id": new_id(),
        "origin": "report",
        "target_kind": "video",
        "target_id": target_id,
        "decision_id": None,
        "filed_by": None,
        "note": "n",
        "status": "open",
        "outcome_id": None,
        "created_at": now_ms(),
        "closed_at": None,
    }


def _restriction(video_id: str, domicile: str = "US") -> dict[str, Any]:
    return {
        "id": new_id(),
        "domicile": domicile,
        "video_id": video_id,
        "jurisdiction": "GB",
        "reason": "r",
        "created_at": now_ms(),
    }


def _refused(store: Store, write: Callable[[sa.Connection], object]) -> bool:
    try:
        with store.begin() as conn:
            write(conn)
    except sa.exc.DBAPIError as exc:
        assert is_moved_error(exc), exc
        return True
    return False


def _seal(store: Store) -> None:
    with store.begin() as conn:
        install_seal(conn, J, "na")


def test_the_seal_passes_guest_copies_and_refuses_every_other_row_of_j(store: Store) -> None:
    _seal(store)
    _seal(store)  # installing it again changes nothing
    # The serving path's rows of J are refused: a user, a video and its blob, a decision.
    assert _refused(store, lambda c: c.execute(sa.insert(USERS).values(_user("US"))))
    own_blob = new_id()
    assert _refused(store, lambda c: c.execute(sa.insert(BLOBS).values(_blob(own_blob, "a" * 64))))
    assert _refused(
        store, lambda c: c.execute(sa.insert(VIDEOS).values(_video(new_id(), own_blob, None)))
    )
    assert _refused(store, lambda c: c.execute(sa.insert(DECISIONS).values(_decision(new_id()))))
    # Other jurisdictions are not sealed.
    assert not _refused(store, lambda c: c.execute(sa.insert(USERS).values(_user("GB"))))

    # A guest copy, written as the exchange writes it: guest entry, blob, video, moderation.
    vid, sha = new_id(), "b" * 64

    def copy(c: sa.Connection) -> None:
        c.execute(sa.insert(GUESTS).values(_guest(vid, sha)))
        c.execute(sa.insert(BLOBS).values(_blob(vid, sha)))
        c.execute(sa.insert(VIDEOS).values(_video(vid, vid, "na")))
        c.execute(sa.insert(DECISIONS).values(_decision(vid)))

    assert not _refused(store, copy)
    # The cell's own moderators act on it: a report, a decision, a restriction, the status.
    assert not _refused(store, lambda c: c.execute(sa.insert(REVIEWS).values(_review(vid))))
    assert not _refused(store, lambda c: c.execute(sa.insert(DECISIONS).values(_decision(vid))))
    assert not _refused(
        store, lambda c: c.execute(sa.insert(RESTRICTIONS).values(_restriction(vid)))
    )
    assert not _refused(
        store,
        lambda c: c.execute(sa.update(VIDEOS).where(VIDEOS.c.id == vid).values(status="rejected")),
    )

    # What only looks like a guest copy is refused: a video saying it is guest content with no
    # guest entry, a guest entry's video without origin_cell, rows of another domicile than
    # the entry's, a guest video turned into an own one.
    other = new_id()
    with store.begin() as conn:
        conn.execute(sa.insert(BLOBS).values(_blob(other, "c" * 64, "GB")))
    assert _refused(
        store, lambda c: c.execute(sa.insert(VIDEOS).values(_video(new_id(), other, "na")))
    )

    def no_origin(c: sa.Connection) -> None:
        v = new_id()
        c.execute(sa.insert(GUESTS).values(_guest(v, "c" * 64)))
        c.execute(sa.insert(VIDEOS).values(_video(v, other, None)))

    assert _refused(store, no_origin)
    assert _refused(
        store, lambda c: c.execute(sa.insert(DECISIONS).values(_decision(vid, domicile="CA")))
    )
    assert _refused(
        store,
        lambda c: c.execute(sa.update(VIDEOS).where(VIDEOS.c.id == vid).values(origin_cell=None)),
    )

    # The purge's rule (of_j) agrees with the seal's: the guest copy is not J's data.
    with store.connect() as conn:
        for table in ("videos", "blobs", "moderation_decisions", "moderation_reviews"):
            tbl = TABLES[table]
            assert (
                conn.execute(
                    sa.select(sa.func.count()).select_from(tbl).where(of_j(table, J))
                ).scalar_one()
                == 0
            )
            assert (
                conn.execute(
                    sa.select(sa.func.count()).select_from(tbl).where(tbl.c.domicile == "US")
                ).scalar_one()
                > 0
            )

    # Withdrawal in its order (the guest entry last) passes the seal and leaves nothing.
    def withdraw(c: sa.Connection) -> None:
        for tbl, col in (
            (RESTRICTIONS, RESTRICTIONS.c.video_id),
            (DECISIONS, DECISIONS.c.target_id),
            (REVIEWS, REVIEWS.c.target_id),
            (VIDEOS, VIDEOS.c.id),
            (BLOBS, BLOBS.c.id),
            (GUESTS, GUESTS.c.video_id),
        ):
            c.execute(sa.delete(tbl).where(col == vid))

    assert not _refused(store, withdraw)
    with store.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(VIDEOS).where(VIDEOS.c.domicile == "US")
            ).scalar_one()
            == 0
        )


def test_a_guest_copys_parts_are_refused_once_its_entry_is_gone(store: Store) -> None:
    """The entry is what lets the parts through: with it deleted first, the rest is J's."""
    _seal(store)
    vid, sha = new_id(), "d" * 64
    with store.begin() as conn:
        conn.execute(sa.insert(GUESTS).values(_guest(vid, sha)))
        conn.execute(sa.insert(BLOBS).values(_blob(vid, sha)))
        conn.execute(sa.insert(VIDEOS).values(_video(vid, vid, "na")))
    with store.begin() as conn:
        conn.execute(sa.delete(GUESTS).where(GUESTS.c.video_id == vid))
    assert _refused(store, lambda c: c.execute(sa.delete(VIDEOS).where(VIDEOS.c.id == vid)))


OLD_SQLITE_SEAL = (
    "CREATE TRIGGER IF NOT EXISTS carve_seal_{t}_insert BEFORE INSERT ON {t} "
    "WHEN NEW.domicile IN ('CA', 'US') BEGIN SELECT RAISE(ABORT, 'carveout:moved:na'); END"
)


def test_installing_the_seal_again_upgrades_an_older_one(sqlite_store: Store) -> None:
    """A seal from before guest copies were let through (SQLite keeps each trigger's text):
    installing the seal again replaces it."""
    with sqlite_store.begin() as conn:
        for t in ("guest_videos", "blobs", "videos"):
            if t != "guest_videos":
                conn.exec_driver_sql(OLD_SQLITE_SEAL.format(t=t))
    vid, sha = new_id(), "e" * 64

    def copy(c: sa.Connection) -> None:
        c.execute(sa.insert(GUESTS).values(_guest(vid, sha)))
        c.execute(sa.insert(BLOBS).values(_blob(vid, sha)))
        c.execute(sa.insert(VIDEOS).values(_video(vid, vid, "na")))

    assert _refused(sqlite_store, copy)
    _seal(sqlite_store)
    assert not _refused(sqlite_store, copy)
    with sqlite_store.begin() as conn:
        remove_triggers(conn, capture=False, seal=True)


def test_only_the_purges_own_transaction_passes_the_seal(store: Store) -> None:
    """`purging` lets its own transaction delete rows of J through the seal; before it, after
    it and on any other connection meanwhile the seal refuses them as ever."""
    with store.begin() as conn:
        conn.execute(sa.insert(USERS).values([_user("US"), _user("US"), _user("GB")]))
    _seal(store)
    one_of_j = sa.delete(USERS).where(
        USERS.c.id
        == sa.select(USERS.c.id).where(USERS.c.domicile == "US").limit(1).scalar_subquery()
    )
    assert _refused(store, lambda c: c.execute(one_of_j))
    with store.begin() as conn, purging(conn):
        assert conn.execute(one_of_j).rowcount == 1
        if store.backend == "sqlite":
            # The pass is a row of this transaction: another connection does not see it.
            with store.connect() as other:
                seen = other.execute(sa.text("SELECT count(*) FROM carve_state")).scalar_one()
            assert seen == 0
    assert _refused(store, lambda c: c.execute(one_of_j))
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(USERS)).scalar_one() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM carve_state")).scalar_one() == 0
