"""Warming a carve's target: the write paths rehearsed on a pooled connection, nothing kept."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from apiclient import Api, auth

from carveout.api.warmup import rehearse_writes
from carveout.datamap import TABLES
from carveout.storage import Rehearsal

COUNTED = ("events", "likes", "comments", "follows", "video_stats")


def _counts(conn: sa.Connection) -> dict[str, int]:
    return {
        t: int(conn.execute(sa.select(sa.func.count()).select_from(TABLES[t])).scalar_one())
        for t in COUNTED
    }


def test_a_rehearsal_runs_each_write_path_and_keeps_nothing(
    make_api: Callable[..., Api], backend: str
) -> None:
    api = make_api(two_cells=True)
    actor = api.signup("CA")
    api.signup("US")
    video = api.upload(actor, seed=1)["id"]
    api.upload(actor, seed=2)
    r = api.client.put(f"/v1/videos/{video}/like", headers=auth(actor))
    assert r.status_code == 200  # the rehearsal then likes the other video
    cell = api.deployment.cell("na-anz")
    before = api.fingerprints()
    with cell.store.connect() as conn:
        trans = conn.begin()
        counts = _counts(conn)
        done = rehearse_writes(cell, conn)
        during = _counts(conn)
        trans.rollback()
    if backend == "sqlite":
        # No catalogue to warm, and its writes would take the one write lock: nothing runs.
        assert done == 0 and during == counts
    else:
        # An event batch, a like (with its event), a comment (with its event), a follow; the
        # sign-in lookup with a token that matches nobody does not count.
        assert done == 4
        assert during["events"] == counts["events"] + 3
        assert during["likes"] == counts["likes"] + 1
        assert during["comments"] == counts["comments"] + 1
        assert during["follows"] == counts["follows"] + 1
    api.assert_unchanged(before)


def test_a_rehearsal_in_a_cell_without_two_users_does_nothing(
    make_api: Callable[..., Api], backend: str
) -> None:
    api = make_api(two_cells=True)
    api.signup("CA")
    cell = api.deployment.cell("na-anz")
    with cell.store.connect() as conn, conn.begin():
        assert rehearse_writes(cell, conn) == 0


def test_a_rehearsal_store_keeps_to_its_connection(
    make_api: Callable[..., Api], backend: str
) -> None:
    api = make_api()
    cell = api.deployment.cells()[0]
    with cell.store.connect() as conn:
        with pytest.raises(ValueError, match="inside a transaction"):
            Rehearsal(cell.store, conn)
        with conn.begin():
            store = Rehearsal(cell.store, conn)
            assert store.backend == backend and store.url == cell.store.url
            for refused in (
                lambda: store.bulk_insert("users", []),
                store.migrate,
                store.dispose,
                store.analyze,
                lambda: store.iter_rows("users", order_by="id"),
            ):
                with pytest.raises(RuntimeError, match="not part of a rehearsal"):
                    refused()
            with store.begin() as inner:
                assert inner is conn and conn.in_nested_transaction()
            with store.read() as inner:
                assert inner is conn
