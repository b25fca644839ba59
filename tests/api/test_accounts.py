"""Sign-up, login, sessions and profiles over HTTP, on every backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from apiclient import Api, auth
from fastapi.testclient import TestClient

from carveout.api import create_app
from carveout.cells import Deployment
from carveout.core import now_ms
from carveout.datamap import TABLES


def test_signup_me_login_logout(api: Api) -> None:
    headers = api.signup("CA", handle="maple", email="Maple@Example.com")
    me = api.client.get("/v1/me", headers=auth(headers)).json()
    assert me["handle"] == "maple"
    assert me["email"] == "maple@example.com"  # normalised
    assert me["domicile"] == "CA"
    assert me["cell"] == "global"

    for login in ("maple", "maple@example.com"):
        r = api.client.post(
            "/v1/sessions", json={"login": login, "password": "correct horse battery"}
        )
        assert r.status_code == 201, r.text
    token = {"Authorization": f"Bearer {r.json()['token']}"}
    assert api.client.get("/v1/me", headers=token).status_code == 200
    assert api.client.delete("/v1/sessions/current", headers=token).status_code == 204
    revoked = api.client.get("/v1/me", headers=token)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]
    # The first session is unaffected by logging out the second.
    assert api.client.get("/v1/me", headers=auth(headers)).status_code == 200


def test_wrong_password_and_unknown_login_look_the_same(api: Api) -> None:
    api.signup(handle="maple")
    wrong = api.client.post("/v1/sessions", json={"login": "maple", "password": "nope-nope-nope"})
    unknown = api.client.post(
        "/v1/sessions", json={"login": "nobody", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_patch_me_and_public_profile(api: Api) -> None:
    a = api.signup()
    b = api.signup()
    r = api.client.patch("/v1/me", headers=auth(a), json={"display_name": "  New Name "})
    assert r.status_code == 200 and r.json()["display_name"] == "New Name"
    api.client.put(f"/v1/users/{a['X-User']}/follow", headers=auth(b))
    profile = api.client.get(f"/v1/users/{a['X-User']}", headers=auth(b)).json()
    assert profile == {
        "id": a["X-User"],
        "handle": "user1",
        "display_name": "New Name",
        "followers": 1,
        "following": 0,
        "videos": 0,
    }
    assert "email" not in profile


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"country": "XX"}, 422, "unknown jurisdiction"),
        ({"country": "ZZ"}, 422, "unknown jurisdiction"),
        ({"email": "not-an-email"}, 422, "email"),
        ({"handle": "No Spaces!"}, 422, "handle"),
        ({"handle": "ab"}, 422, "handle"),
        ({"birth_year": 2030}, 422, "birth_year"),
        ({"display_name": ""}, 422, "display_name"),
        ({"password": "short"}, 422, "password"),
        ({"unexpected": "field"}, 422, "unexpected"),
    ],
)
def test_bad_signups_are_refused_and_change_nothing(
    api: Api, change: dict[str, object], status: int, needle: str
) -> None:
    api.signup()
    before = api.fingerprints()
    body = {
        "handle": "fresh",
        "display_name": "Fresh",
        "email": "fresh@example.com",
        "password": "long enough pw",
        "birth_year": 1999,
        "country": "GB",
        **change,
    }
    r = api.client.post("/v1/users", json=body)
    assert r.status_code == status, r.text
    assert needle in r.text
    api.assert_unchanged(before)


def test_duplicate_handle_or_email_is_409_even_across_cells(make_api: Callable[..., Api]) -> None:
    api = make_api(two_cells=True)
    api.signup("CA", handle="maple", email="maple@example.com")
    before = api.fingerprints()
    for change in ({"handle": "maple"}, {"email": "MAPLE@example.com"}):
        body = {
            "handle": "other",
            "display_name": "O",
            "email": "other@example.com",
            "password": "long enough pw",
            "country": "GB",
            **change,
        }
        r = api.client.post("/v1/users", json=body)
        assert r.status_code == 409, r.text
        assert "already registered" in r.json()["detail"]
    api.assert_unchanged(before)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer garbage",
        "Basic dXNlcjpwdw==",
        "Bearer co1_XX_abc",
        "Bearer co1_CA_abc",
    ],
)
def test_missing_or_bad_auth_is_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = api.client.get("/v1/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_malformed_json_is_422_with_reason(api: Api) -> None:
    r = api.client.post(
        "/v1/users", content=b'{"handle": "x",', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "JSON" in r.text


def test_unknown_user_is_404(api: Api) -> None:
    a = api.signup()
    r = api.client.get("/v1/users/0190a000-0000-7000-8000-000000000000", headers=auth(a))
    assert r.status_code == 404


def test_users_live_in_the_cell_of_their_country(make_api: Callable[..., Api]) -> None:
    api = make_api(two_cells=True)
    ca = api.signup("CA")
    gb = api.signup("GB")
    assert api.client.get("/v1/me", headers=auth(ca)).json()["cell"] == "na-anz"
    assert api.client.get("/v1/me", headers=auth(gb)).json()["cell"] == "global"
    counts = {}
    for cell in api.deployment.cells():
        with cell.store.connect() as conn:
            counts[cell.name] = sorted(
                r[0] for r in conn.exec_driver_sql("SELECT domicile FROM users")
            )
    assert counts == {"na-anz": ["CA"], "global": ["GB"]}
    # A user of one cell cannot see a user of the other through their cell.
    r = api.client.get(f"/v1/users/{gb['X-User']}", headers=auth(ca))
    assert r.status_code == 404


def test_expired_session_is_refused(api: Api) -> None:
    a = api.signup()
    sessions = TABLES["sessions"]
    with api.deployment.cells()[0].store.begin() as conn:
        conn.execute(sa.update(sessions).values(expires_at=now_ms() - 1))
    r = api.client.get("/v1/me", headers=auth(a))
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


def test_accounts_sessions_and_videos_survive_a_restart(make_api: Callable[..., Api]) -> None:
    api = make_api(two_cells=True)
    ca = api.signup("CA")
    video = api.upload(ca, seed=4)
    data_dir = api.deployment.data_dir
    api.client.close()
    api.deployment.close()
    reopened = Deployment.open(data_dir)
    try:
        with TestClient(create_app(reopened)) as client:
            me = client.get("/v1/me", headers=auth(ca))
            assert me.status_code == 200 and me.json()["cell"] == "na-anz"
            media = client.get(video["media_url"], headers=auth(ca))
            assert media.status_code == 200 and len(media.content) > 0
    finally:
        reopened.close()
