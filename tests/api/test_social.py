"""Follows, likes and comments over HTTP."""

from __future__ import annotations

import sqlalchemy as sa
from apiclient import Api, auth

from carveout.datamap import TABLES


def _ids(page: dict[str, list[dict[str, str]]]) -> list[str]:
    return [u["id"] for u in page["items"]]


def test_follow_is_idempotent_and_listed(api: Api) -> None:
    a, b, c = api.signup(), api.signup(), api.signup()
    url = f"/v1/users/{a['X-User']}/follow"
    assert api.client.put(url, headers=auth(b)).json() == {"changed": True}
    assert api.client.put(url, headers=auth(b)).json() == {"changed": False}
    assert api.client.put(url, headers=auth(c)).json() == {"changed": True}
    followers = api.client.get(f"/v1/users/{a['X-User']}/followers", headers=auth(a)).json()
    assert _ids(followers) == [c["X-User"], b["X-User"]]  # most recent first
    page1 = api.client.get(
        f"/v1/users/{a['X-User']}/followers", headers=auth(a), params={"limit": 1}
    ).json()
    page2 = api.client.get(
        f"/v1/users/{a['X-User']}/followers",
        headers=auth(a),
        params={"limit": 1, "cursor": page1["next_cursor"]},
    ).json()
    assert _ids(page1) + _ids(page2) == [c["X-User"], b["X-User"]]
    assert page2["next_cursor"] is None
    following = api.client.get(f"/v1/users/{b['X-User']}/following", headers=auth(a)).json()
    assert _ids(following) == [a["X-User"]]
    assert api.client.delete(url, headers=auth(b)).json() == {"changed": True}
    assert api.client.delete(url, headers=auth(b)).json() == {"changed": False}
    # The follow row carries the follower's domicile (the data map's rule).
    with api.deployment.cells()[0].store.connect() as conn:
        rows = conn.execute(sa.select(TABLES["follows"].c.domicile)).all()
    assert [r[0] for r in rows] == ["CA"]


def test_follow_refusals_change_nothing(api: Api) -> None:
    a = api.signup()
    before = api.fingerprints()
    me = api.client.put(f"/v1/users/{a['X-User']}/follow", headers=auth(a))
    assert me.status_code == 422 and "yourself" in me.json()["detail"]
    ghost = api.client.put("/v1/users/0190a000-0000-7000-8000-000000000000/follow", headers=auth(a))
    assert ghost.status_code == 404
    assert api.client.put(f"/v1/users/{a['X-User']}/follow").status_code == 401
    api.assert_unchanged(before)


def test_like_unlike_and_comments(api: Api) -> None:
    creator, fan, other = api.signup("NZ"), api.signup("SG"), api.signup("GB")
    video = api.upload(creator, seed=1)
    like_url = f"/v1/videos/{video['id']}/like"
    assert api.client.put(like_url, headers=auth(fan)).json() == {"changed": True}
    assert api.client.put(like_url, headers=auth(fan)).json() == {"changed": False}
    assert api.client.delete(like_url, headers=auth(fan)).json() == {"changed": True}

    url = f"/v1/videos/{video['id']}/comments"
    made = []
    for i in range(3):
        r = api.client.post(url, headers=auth(fan), json={"body": f"  comment {i}  "})
        assert r.status_code == 201, r.text
        made.append(r.json())
    assert made[0]["body"] == "comment 0" and made[0]["author_handle"] == "user2"
    listed = api.client.get(url, headers=auth(other), params={"limit": 2}).json()
    rest = api.client.get(
        url, headers=auth(other), params={"limit": 2, "cursor": listed["next_cursor"]}
    ).json()
    assert [c["id"] for c in listed["items"] + rest["items"]] == [c["id"] for c in made]

    forbidden = api.client.delete(f"/v1/comments/{made[0]['id']}", headers=auth(other))
    assert forbidden.status_code == 403
    assert api.client.delete(f"/v1/comments/{made[0]['id']}", headers=auth(fan)).status_code == 204
    assert api.client.delete(f"/v1/comments/{made[0]['id']}", headers=auth(fan)).status_code == 404
    remaining = api.client.get(url, headers=auth(other)).json()["items"]
    assert [c["id"] for c in remaining] == [c["id"] for c in made[1:]]
    # Likes and comments are also interaction events, domiciled with the actor.
    with api.deployment.cells()[0].store.connect() as conn:
        kinds = conn.execute(sa.select(TABLES["events"].c.kind, TABLES["events"].c.domicile)).all()
    assert sorted(kinds) == [("comment", "SG")] * 3 + [("like", "SG")]


def test_comment_refusals_change_nothing(api: Api) -> None:
    creator, fan = api.signup(), api.signup()
    video = api.upload(creator, seed=2)
    before = api.fingerprints()
    url = f"/v1/videos/{video['id']}/comments"
    assert api.client.post(url, headers=auth(fan), json={"body": "   "}).status_code == 422
    assert api.client.post(url, headers=auth(fan), json={"body": "x" * 2001}).status_code == 422
    assert api.client.post(url, headers=auth(fan), json={}).status_code == 422
    missing = "/v1/videos/0190a000-0000-7000-8000-000000000000"
    assert (
        api.client.post(f"{missing}/comments", headers=auth(fan), json={"body": "hi"}).status_code
        == 404
    )
    assert api.client.put(f"{missing}/like", headers=auth(fan)).status_code == 404
    api.assert_unchanged(before)
