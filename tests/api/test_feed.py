"""Interaction events, the For You feed and trending."""

from __future__ import annotations

from typing import Any

import pytest
from apiclient import Api, auth


def _feed(api: Api, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = api.client.get("/v1/feed", headers=auth(headers), params=params)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_feed_ranks_by_watch_ratio_and_drops_watched(api: Api) -> None:
    creator = api.signup("US")
    viewers = [api.signup("CA") for _ in range(3)]
    me = api.signup("GB")
    vids = [api.upload(creator, seed=s) for s in range(4)]  # each 1000 ms long
    # Video 2 is watched to the end three times over, video 0 barely.
    ratios = {vids[2]["id"]: 3000, vids[1]["id"]: 900, vids[0]["id"]: 100}
    for v in viewers:
        batch = [{"video_id": vid, "kind": "watch", "watched_ms": ms} for vid, ms in ratios.items()]
        batch += [{"video_id": vid, "kind": "impression"} for vid in ratios]
        r = api.client.post("/v1/events", headers=auth(v), json={"events": batch})
        assert r.status_code == 202 and r.json() == {"accepted": 6}
    feed = _feed(api, me)
    order = [i["video"]["id"] for i in feed["items"]]
    assert order[0] == vids[2]["id"]
    assert order.index(vids[1]["id"]) < order.index(vids[0]["id"])
    # No model trained in this cell yet: the fallback says so.
    assert all(i["source"] == "popular (no model)" for i in feed["items"])
    scores = [i["score"] for i in feed["items"]]
    assert scores == sorted(scores, reverse=True)

    # Once watched, a video leaves the viewer's feed at the next request.
    watch = {"events": [{"video_id": vids[2]["id"], "kind": "watch", "watched_ms": 500}]}
    api.client.post("/v1/events", headers=auth(me), json=watch)
    assert vids[2]["id"] not in [i["video"]["id"] for i in _feed(api, me)["items"]]
    # A creator's own videos are not in their feed.
    assert _feed(api, creator)["items"] == []


def test_feed_pages_do_not_repeat(api: Api) -> None:
    creator, me = api.signup(), api.signup()
    ids = {api.upload(creator, seed=s)["id"] for s in range(7)}
    seen: list[str] = []
    cursor = None
    while True:
        page = _feed(api, me, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [i["video"]["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)


def test_trending_counts_recent_engagement(api: Api) -> None:
    creator, a, b = api.signup(), api.signup(), api.signup()
    v1, v2 = api.upload(creator, seed=1), api.upload(creator, seed=2)
    for h in (a, b):
        api.client.post(
            "/v1/events",
            headers=auth(h),
            json={"events": [{"video_id": v2["id"], "kind": "watch", "watched_ms": 10}]},
        )
    api.client.put(f"/v1/videos/{v1['id']}/like", headers=auth(a))  # weight 3 > 2 watches
    items = api.client.get("/v1/trending", headers=auth(b)).json()["items"]
    assert [(i["video"]["id"], i["score"]) for i in items] == [(v1["id"], 3.0), (v2["id"], 2.0)]


@pytest.mark.parametrize(
    ("events", "status", "needle"),
    [
        ([], 422, "empty"),
        ([{"video_id": "VID", "kind": "watch"}], 422, "watched_ms"),
        ([{"video_id": "VID", "kind": "like", "watched_ms": 5}], 422, "watched_ms"),
        ([{"video_id": "VID", "kind": "dance"}], 422, "kind"),
        ([{"video_id": "VID", "kind": "watch", "watched_ms": -1}], 422, "watched_ms"),
        ([{"video_id": "VID", "kind": "skip", "occurred_at": 1}], 422, "occurred_at"),
        (
            [
                {"video_id": "VID", "kind": "skip"},
                {"video_id": "0190a000-0000-7000-8000-000000000000", "kind": "skip"},
            ],
            404,
            "unknown video",
        ),
        ([{"video_id": "VID", "kind": "skip"}] * 501, 422, "500"),
    ],
)
def test_bad_event_batches_store_nothing(
    api: Api, events: list[dict[str, Any]], status: int, needle: str
) -> None:
    creator, me = api.signup(), api.signup()
    video = api.upload(creator, seed=1)
    before = api.fingerprints()
    body = {
        "events": [{**e, "video_id": e["video_id"].replace("VID", video["id"])} for e in events]
    }
    r = api.client.post("/v1/events", headers=auth(me), json=body)
    assert r.status_code == status, r.text
    assert needle in r.text
    api.assert_unchanged(before)


def test_health_lists_cells(api: Api) -> None:
    r = api.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["cells"] == {"global": ["*"]}
