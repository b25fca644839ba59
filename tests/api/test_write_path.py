"""The write path's merged statements: likes and follows written once under concurrency, and
the counters that events, likes and comments add up equal to a rebuild from the event log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from apiclient import Api, auth

from carveout import events, social
from carveout.accounts import User, authenticate
from carveout.core import now_ms
from carveout.datamap import TABLES
from carveout.events import stats
from carveout.storage import Store

LIKES, FOLLOWS, EVENTS, STATS = (
    TABLES["likes"],
    TABLES["follows"],
    TABLES["events"],
    TABLES["video_stats"],
)
THREADS = 6


def _user(api: Api, headers: dict[str, str]) -> User:
    token = headers["Authorization"].removeprefix("Bearer ")
    return authenticate(api.deployment.cells()[0], token)


def _at_once(work: Callable[[], bool]) -> list[bool]:
    """`work` on THREADS threads released together; their results."""
    start = threading.Barrier(THREADS)
    results: list[bool] = []
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def _count(api: Api, stmt: sa.Select[Any]) -> int:
    with api.deployment.cells()[0].store.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _stats(api: Api) -> dict[str, tuple[Any, ...]]:
    cols = [c for c in STATS.c if c.name != "updated_at"]
    with api.deployment.cells()[0].store.connect() as conn:
        rows = conn.execute(sa.select(*cols).order_by(STATS.c.video_id)).all()
    return {r[0]: tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows}


def test_concurrent_likes_of_one_video_store_one_like(api: Api) -> None:
    creator, fan = api.signup("NZ"), api.signup("GB")
    video = api.upload(creator)["id"]
    store, user = api.deployment.cells()[0].store, _user(api, fan)
    results = _at_once(lambda: social.like(store, user, video))
    assert sorted(results) == [False] * (THREADS - 1) + [True]
    assert _count(api, sa.select(sa.func.count()).select_from(LIKES)) == 1
    like_events = sa.select(sa.func.count()).where(EVENTS.c.kind == "like")
    assert _count(api, like_events) == 1
    assert _count(api, sa.select(STATS.c.likes).where(STATS.c.video_id == video)) == 1


def test_concurrent_follows_of_one_user_store_one_follow(api: Api) -> None:
    star, fan = api.signup("US"), api.signup("JP")
    store, user = api.deployment.cells()[0].store, _user(api, fan)
    results = _at_once(lambda: social.follow(store, user, star["X-User"]))
    assert sorted(results) == [False] * (THREADS - 1) + [True]
    assert _count(api, sa.select(sa.func.count()).select_from(FOLLOWS)) == 1


def test_following_an_erased_user_is_not_found_even_when_already_following(api: Api) -> None:
    star, fan = api.signup("US"), api.signup("JP")
    url = f"/v1/users/{star['X-User']}/follow"
    assert api.client.put(url, headers=auth(fan)).json() == {"changed": True}
    with api.deployment.cells()[0].store.begin() as conn:
        conn.execute(
            sa.update(TABLES["users"])
            .where(TABLES["users"].c.id == star["X-User"])
            .values(status="erased")
        )
    assert api.client.put(url, headers=auth(fan)).status_code == 404


def test_counters_added_by_writes_equal_a_rebuild_from_the_log(api: Api) -> None:
    creator, fan, other = api.signup("NZ"), api.signup("GB"), api.signup("DE")
    first, second = api.upload(creator, seed=1)["id"], api.upload(creator, seed=2)["id"]
    # A video without a counter row gets one from its first write (after a carve's cutover,
    # say), starting from that write's deltas.
    with api.deployment.cells()[0].store.begin() as conn:
        conn.execute(sa.delete(STATS).where(STATS.c.video_id == second))
    batch = [
        {"video_id": first, "kind": "watch", "watched_ms": 1500},
        {"video_id": second, "kind": "watch", "watched_ms": 700},
        {"video_id": first, "kind": "impression"},
        {"video_id": second, "kind": "skip"},
        {"video_id": first, "kind": "watch", "watched_ms": 90},
    ]
    for who in (fan, other):
        r = api.client.post("/v1/events", headers=auth(who), json={"events": batch})
        assert r.status_code == 202, r.text
        for video in (first, second):
            assert api.client.put(f"/v1/videos/{video}/like", headers=auth(who)).status_code == 200
            r = api.client.post(
                f"/v1/videos/{video}/comments", headers=auth(who), json={"body": "nice one"}
            )
            assert r.status_code == 201, r.text
    added = _stats(api)
    assert set(added) == {first, second}
    assert added[first][STATS.c.keys().index("likes")] == 2
    events.recompute_all(api.deployment.cells()[0].store, now_ms())
    assert _stats(api) == added


def _watches(n: int, ratio: float) -> stats.StatsDelta:
    delta = stats.StatsDelta()
    delta.counts["watches"] = n
    delta.watch_ratio_sum = ratio
    return delta


def test_negative_deltas_of_an_erasure_take_counters_back(store: Store) -> None:
    """An erasure subtracts the erased user's events, here as many watches as the prior's
    weight: the counters go back down, and a video without counters does not fail the
    write (its new row gets the prior's popularity)."""
    seen, unseen = "v-seen", "v-unseen"
    n = int(stats.SHRINK_M)
    with store.begin() as conn:
        conn.execute(STATS.insert(), [stats.zero_row(seen, "US", 1)])
        stats.apply_deltas(conn, {seen: _watches(n, 6.0)}, {seen: "US"}, 2)
    with store.begin() as conn:
        down = {seen: _watches(-n, -6.0), unseen: _watches(-n, -6.0)}
        stats.apply_deltas(conn, down, {seen: "US", unseen: "US"}, 3)
        rows = {
            r.video_id: (r.watches, r.watch_ratio_sum, r.popularity)
            for r in conn.execute(sa.select(STATS))
        }
    assert rows[seen] == (0, 0.0, stats.popularity(0.0, 0))
    assert rows[unseen] == (-n, -6.0, stats.PRIOR)
