"""Staff access over the API: roles scoped to cells, the stated purpose, reads logged where the
subject sees them, a privacy officer's verified erasures, the auditor's view of the log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from apiclient import Api, auth

from api.staff_helpers import LOG, PURPOSE, all_logs, cell_of, h, log_rows, make_staff
from api.test_privacy import _export
from carveout import privacy
from carveout.accounts import staff
from carveout.datamap import TABLES
from carveout.moderation import hash_video

ROLES = ("moderator", "privacy_officer", "operator", "auditor")


def test_roles_are_checked_and_valid_only_in_their_cell(make_api: Callable[..., Api]) -> None:
    api = make_api(two_cells=True)
    na, world = api.deployment.cell("na-anz"), api.deployment.cell("global")
    officer, subject = api.signup("US"), api.signup("CA")
    url = f"/v1/staff/users/{subject['X-User']}"
    r = api.client.get(url, headers=h(officer))
    assert r.status_code == 403
    assert "privacy_officer role in cell na-anz" in r.json()["detail"]
    # Another role is not this one.
    staff.grant(na, officer["X-User"], "moderator", granted_by="tests")
    assert api.client.get(url, headers=h(officer)).status_code == 403
    # A grant is only accepted for an account of that cell...
    try:
        staff.grant(world, officer["X-User"], "privacy_officer", granted_by="tests")
        raise AssertionError("a grant reached across cells")
    except Exception as exc:
        assert type(exc).__name__ == "NotFound" and "cell global" in str(exc)
    # ...and a stray row in another cell's staff_roles (say, restored from somewhere) gives
    # nothing here: the token routes to the account's own cell, whose grants are its own.
    with world.store.begin() as conn:
        conn.execute(
            sa.insert(TABLES["staff_roles"]).values(
                id="stray",
                user_id=officer["X-User"],
                role="privacy_officer",
                granted_by="nobody",
                created_at=0,
            )
        )
    assert api.client.get(url, headers=h(officer)).status_code == 403
    assert all_logs(api) == {"na-anz": [], "global": []}
    staff.grant(na, officer["X-User"], "privacy_officer", granted_by="tests")
    r = api.client.get(url, headers=h(officer))
    assert r.status_code == 200, r.text
    assert [g.role for g in staff.grants(na, officer["X-User"])] == ["moderator", "privacy_officer"]
    assert staff.revoke(na, officer["X-User"], "privacy_officer")
    assert not staff.revoke(na, officer["X-User"], "privacy_officer")
    assert api.client.get(url, headers=h(officer)).status_code == 403
    assert len(log_rows(na)) == 1


def _global_world(api: Api) -> dict[str, Any]:
    """Things of the `global` cell a staff member of `na-anz` will try to reach."""
    world = api.deployment.cell("global")
    local_mod = make_staff(api, "GB", "moderator")
    creator, reporter, gone = api.signup("GB"), api.signup("GB"), api.signup("FR")
    video = api.upload(creator, seed=5)
    body = {"target_kind": "video", "target_id": video["id"], "reason": "spam"}
    review = api.client.post("/v1/reports", headers=auth(reporter), json=body)
    assert review.status_code == 201, review.text
    bank = {"name": "gb-bank", "jurisdiction": "GB"}
    assert (
        api.client.post("/v1/moderation/banks", headers=h(local_mod), json=bank).status_code == 201
    )
    pdq = hash_video(api.video_file(seed=6)).hexes[0]
    r = api.client.post(
        "/v1/moderation/banks/gb-bank/hashes", headers=h(local_mod), json={"text": pdq}
    )
    assert r.status_code == 200, r.text
    receipt = privacy.erase(world, gone["X-User"], requested_by="tests")
    return {
        "user": creator["X-User"],
        "video": video["id"],
        "review": review.json()["id"],
        "request": receipt.request_id,
        "pdq": pdq,
    }


def test_staff_of_one_cell_reach_nothing_of_another(make_api: Callable[..., Api]) -> None:
    api = make_api(two_cells=True)
    theirs = _global_world(api)
    mine = make_staff(api, "US", *ROLES)  # every role, in na-anz
    before = api.fingerprints()
    decide = {"visibility": "rejected", "facts": "x", "ground": "terms", "rule": "CG 1"}
    erase = {"user_id": theirs["user"], "purpose": PURPOSE, "verification": "signed letter"}
    c, who = api.client, h(mine)
    # Every staff endpoint, aimed at the other cell's user, video, review, request or bank.
    refused = {
        "read account": c.get(f"/v1/staff/users/{theirs['user']}", headers=who),
        "erase": c.post("/v1/staff/erasures", headers=who, json=erase),
        "receipt": c.get(f"/v1/staff/erasures/{theirs['request']}", headers=who),
        "decisions": c.get(f"/v1/videos/{theirs['video']}/decisions", headers=who),
        "decide": c.post(
            f"/v1/moderation/queue/{theirs['review']}/decision", headers=who, json=decide
        ),
        "bank patch": c.patch("/v1/moderation/banks/gb-bank", headers=who, json={"enabled": False}),
        "bank hashes": c.post(
            "/v1/moderation/banks/gb-bank/hashes", headers=who, json={"text": theirs["pdq"]}
        ),
        "bank hash off": c.delete(
            f"/v1/moderation/banks/gb-bank/hashes/{theirs['pdq']}", headers=who
        ),
    }
    assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 404)
    # Listings show only the caller's own cell: nothing of the other cell, so nothing logged.
    queue = c.get("/v1/moderation/queue", headers=who)
    assert queue.status_code == 200 and queue.json() == []
    assert c.get("/v1/moderation/banks", headers=who).json() == []
    for query in ("", f"?subject_id={theirs['user']}"):
        r = c.get(f"/v1/staff/access-log{query}", headers=who)
        assert r.status_code == 200 and r.json()["items"] == [], r.text
    # No log entry landed anywhere, and nothing else changed in either cell.
    assert all_logs(api) == {"na-anz": [], "global": []}
    api.assert_unchanged(before)


def test_no_stated_purpose_is_refused_and_nothing_is_logged(api: Api) -> None:
    cell = cell_of(api, "CA")
    officer = make_staff(api, "CA", *ROLES)
    subject, gone = api.signup("CA"), api.signup("CA")
    video = api.upload(subject, seed=7)
    rid = privacy.erase(cell, gone["X-User"], requested_by="tests").request_id
    before = api.fingerprints()
    reads = [
        f"/v1/staff/users/{subject['X-User']}",
        f"/v1/staff/erasures/{rid}",
        "/v1/staff/access-log",
        "/v1/moderation/queue",
        f"/v1/videos/{video['id']}/decisions",
    ]
    bad: list[str | None] = [None, "", "   ", "x" * 501, "why\x07not"]
    for url in reads:
        for purpose in bad:
            r = api.client.get(url, headers=h(officer, purpose))
            assert r.status_code == 422, (url, purpose, r.text)
            assert "purpose" in r.json()["detail"]
    for purpose, verification in (("", "signed letter"), (PURPOSE, ""), (PURPOSE, " ")):
        body = {"user_id": subject["X-User"], "purpose": purpose, "verification": verification}
        r = api.client.post("/v1/staff/erasures", headers=h(officer), json=body)
        assert r.status_code == 422, r.text
    assert log_rows(cell) == []
    api.assert_unchanged(before)
    assert api.client.get("/v1/me", headers=auth(subject)).status_code == 200


def test_officer_reads_an_account_and_the_subject_sees_who_and_why(api: Api) -> None:
    cell = cell_of(api, "CA")
    officer = make_staff(api, "CA", "privacy_officer")
    subject = api.signup("CA", email="seen@example.org")
    purpose = "Auskunftsersuchen prüfen (Art. 15), Vorgang 12"
    r = api.client.get(f"/v1/staff/users/{subject['X-User']}", headers=h(officer, purpose.encode()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["email"], body["birth_year"], body["status"]) == (
        "seen@example.org",
        1990,
        "active",
    )
    assert (body["domicile"], body["cell"]) == ("CA", cell.name)
    unknown = api.client.get("/v1/staff/users/no-such-user", headers=h(officer))
    assert unknown.status_code == 404
    (entry,) = log_rows(cell)
    assert (entry["domicile"], entry["seq"], entry["prev_hash"]) == ("CA", 1, "0" * 64)
    assert (entry["staff_id"], entry["role"], entry["purpose"]) == (
        officer["X-User"],
        "privacy_officer",
        purpose,
    )
    # An auditor reading the log entry about them is a read of their data too.
    auditor = make_staff(api, "CA", "auditor")
    r = api.client.get("/v1/staff/access-log", headers=h(auditor, "quarterly audit"))
    assert [e["id"] for e in r.json()["items"]] == [entry["id"]]
    archive = _export(api, subject)
    rows = json.loads(archive.read("data/staff_access_log.json"))["rows"]
    assert [(e["purpose"], e["role"]) for e in rows] == [
        (purpose, "privacy_officer"),
        ("quarterly audit", "auditor"),
    ]
    assert rows[0]["id"] == entry["id"]
    summary = archive.read("summary.txt").decode()
    assert f"a privacy officer read your account with its private fields: {purpose}" in summary
    assert "an auditor read access-log entries about you (1): quarterly audit" in summary


def test_verified_erasure_by_a_privacy_officer(api: Api) -> None:
    cell = cell_of(api, "CA")
    officer = make_staff(api, "CA", "privacy_officer")
    auditor, mod = make_staff(api, "CA", "auditor"), make_staff(api, "CA", "moderator")
    subject, busy = api.signup("CA"), api.signup("CA")
    api.upload(subject, seed=8)
    body = {
        "user_id": subject["X-User"],
        "purpose": "erasure request received by post",
        "verification": "identity confirmed by a signed message from the account's email",
    }
    assert api.client.post("/v1/staff/erasures", headers=h(mod), json=body).status_code == 403
    r = api.client.post("/v1/staff/erasures", headers=h(officer), json=body)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["requested_by"] == officer["X-User"]
    assert (receipt["purpose"], receipt["verification"]) == (body["purpose"], body["verification"])
    lines = {line["store"]: line["records"] for line in receipt["stores"]}
    assert lines["key store"] == 1 and lines["database: videos"] == 1
    assert api.client.get("/v1/me", headers=auth(subject)).status_code == 401
    (entry,) = log_rows(cell)
    assert entry["subject_id"] == subject["X-User"] and entry["purpose"] == body["purpose"]
    # Already erased: 410, and no entry for a refused request.
    assert api.client.post("/v1/staff/erasures", headers=h(officer), json=body).status_code == 410
    # While another erasure of a user runs: 409, nothing logged; its receipt is not ready.
    running = privacy.start_erasure(cell, busy["X-User"], requested_by=busy["X-User"])
    again = {**body, "user_id": busy["X-User"]}
    assert api.client.post("/v1/staff/erasures", headers=h(officer), json=again).status_code == 409
    assert api.client.get(f"/v1/staff/erasures/{running}", headers=h(auditor)).status_code == 409
    assert len(log_rows(cell)) == 1
    # The receipt, for officers and auditors (a logged read), not for moderators.
    url = f"/v1/staff/erasures/{receipt['request_id']}"
    assert api.client.get(url, headers=h(mod)).status_code == 403
    for reader in (auditor, officer):
        got = api.client.get(url, headers=h(reader))
        assert got.status_code == 200 and got.json() == receipt
    assert api.client.get("/v1/staff/erasures/nope", headers=h(auditor)).status_code == 404
    assert [e["role"] for e in log_rows(cell)] == ["privacy_officer", "auditor", "privacy_officer"]


def test_auditor_reads_the_log_and_its_verification(api: Api) -> None:
    cell = cell_of(api, "CA")
    officer, auditor = make_staff(api, "CA", "privacy_officer"), make_staff(api, "CA", "auditor")
    ca, gb = api.signup("CA"), api.signup("GB")
    for who in (ca, gb, ca):
        r = api.client.get(f"/v1/staff/users/{who['X-User']}", headers=h(officer))
        assert r.status_code == 200
    assert api.client.get("/v1/staff/access-log", headers=h(officer)).status_code == 403
    r = api.client.get("/v1/staff/access-log?limit=2", headers=h(auditor, "quarterly audit"))
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert page["chain"]["intact"] and page["chain"]["problems"] == []
    # The chain check runs after the read, so it covers the entries the read itself appended.
    heads = {hd["jurisdiction"]: hd["seq"] for hd in page["chain"]["heads"]}
    assert heads == {"CA": 3, "GB": 2}
    rest = api.client.get(
        f"/v1/staff/access-log?limit=2&cursor={page['next_cursor']}", headers=h(auditor)
    ).json()
    # Newest first, and the cursor goes on below the first page whatever was appended since.
    seen = [(e["role"], e["subject_id"]) for e in page["items"] + rest["items"]]
    assert seen == [("privacy_officer", u["X-User"]) for u in (ca, gb, ca)]
    assert rest["next_cursor"] is None
    only = api.client.get(f"/v1/staff/access-log?subject_id={gb['X-User']}", headers=h(auditor))
    assert {e["subject_id"] for e in only.json()["items"]} == {gb["X-User"]}
    audits = [e for e in log_rows(cell) if e["role"] == "auditor"]
    assert {e["purpose"] for e in audits} >= {"quarterly audit"}
    assert all(e["action"].startswith("access-log entries about you") for e in audits)
    # An entry edited behind the log's back shows in the verification.
    with cell.store.begin() as conn:
        conn.execute(
            sa.update(LOG).where(LOG.c.domicile == "GB", LOG.c.seq == 1).values(purpose="curious")
        )
    chain = api.client.get("/v1/staff/access-log", headers=h(auditor)).json()["chain"]
    assert not chain["intact"]
    assert [(p["jurisdiction"], p["seq"]) for p in chain["problems"]] == [("GB", 1)]
    assert "edited" in chain["problems"][0]["problem"]
