"""The leak scan with guest content: allowed copies pass, anything else foreign is still found."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from exchange_env import NA, Env, auth

from carveout.carve.verify import leak_scan
from carveout.cells import Policy
from carveout.core import new_id
from carveout.datamap import TABLES


def _synced(env: Env) -> str:
    gb, ca = env.signup("GB"), env.signup("CA")
    v = env.upload(gb, 31)["id"]
    env.sync()
    # A user of B reports the guest copy: B's review item is about the copy (its domicile).
    r = env.client.post(
        "/v1/reports",
        headers=auth(ca),
        json={"target_kind": "video", "target_id": v, "reason": "looks like spam"},
    )
    assert r.status_code == 201, r.text
    return v


def test_allowed_guest_copies_are_not_leaks(env: Env) -> None:
    _synced(env)
    scan = leak_scan(env.na, NA, env.deployment.policy)
    assert scan.leaks == 0, scan
    assert scan.guest_rows == {
        "blobs": 1,
        "videos": 1,
        "video_stats": 1,
        "moderation_reviews": 1,
    }
    # Without the policy there is no allowance: the same rows are foreign.
    assert leak_scan(env.na, NA).leaks == 4


def test_a_planted_foreign_row_is_still_a_leak(env: Env) -> None:
    v = _synced(env)
    with env.na.store.begin() as conn:
        row = dict(conn.execute(sa.select(TABLES["videos"])).one()._mapping)
        # Looks like a guest copy (origin_cell set) but the exchange never wrote it.
        conn.execute(sa.insert(TABLES["videos"]).values({**row, "id": new_id()}))
        # A foreign user's like: never part of any guest copy.
        conn.execute(
            sa.insert(TABLES["likes"]).values(
                id=new_id(), domicile="GB", user_id=new_id(), video_id=v, created_at=1
            )
        )
    scan = leak_scan(env.na, NA, env.deployment.policy)
    assert scan.foreign_rows["videos"] == 1 and scan.foreign_rows["likes"] == 1
    assert scan.leaks == 2


def test_guest_copies_from_a_cell_that_left_the_exchange_are_leaks(env: Env) -> None:
    _synced(env)
    policy = env.deployment.policy
    closed = Policy(
        cells=tuple(
            dataclasses.replace(c, content_exchange=False) if c.name == "global" else c
            for c in policy.cells
        ),
        sites=policy.sites,
    )
    assert leak_scan(env.na, NA, closed).leaks == 4


def test_a_moderators_read_about_a_guest_creator_is_a_guest_row(env: Env) -> None:
    """Listing the review queue logs a staff read about the copy's creator, under the copy's
    domicile: part of the guest copy, like the review item itself."""
    from carveout.accounts import staff

    _synced(env)
    mod = env.signup("US")
    staff.grant(env.na, mod["id"], "moderator", "tests")
    queue = env.client.get(
        "/v1/moderation/queue", headers={**auth(mod), "X-Access-Purpose": "reviewing reports"}
    )
    assert queue.status_code == 200 and len(queue.json()) == 1, queue.text
    log = TABLES["staff_access_log"]
    with env.na.store.connect() as conn:
        doms = [r[0] for r in conn.execute(sa.select(log.c.domicile))]
    assert "GB" in doms  # the content's domicile, in B
    scan = leak_scan(env.na, NA, env.deployment.policy)
    assert scan.leaks == 0, scan
    assert scan.guest_rows["staff_access_log"] == doms.count("GB")
