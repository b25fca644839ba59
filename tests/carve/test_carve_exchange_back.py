"""After a carve, content flows back: the source's staying users get guest copies of the carved
cell's videos through the exchange, while the seal still refuses every other write of J. Small
data made through the API, on SQLite and on PostgreSQL (the replication path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from carveout import carve, exchange
from carveout.accounts import staff
from carveout.api import create_app
from carveout.carve import Phase, is_moved_error
from carveout.carve.purge import of_j, purge, upgrade_seals
from carveout.cells import Cell, init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.cli.main import app
from carveout.core import new_id, now_ms
from carveout.datamap import DATA_MAP, TABLES
from exchange.exchange_env import Env, auth, count

# Two countries, not carving.MOVING's four: _old_seal below names these two.
MOVING = ("CA", "US")
VIDEOS, GUESTS, USERS = TABLES["videos"], TABLES["guest_videos"], TABLES["users"]


class World(Env):
    """The exchange tests' client (exchange_env.Env) seen from a carve: `global` is the source,
    the carve makes `na`, and content flows back from `na` to `global`."""

    @property
    def source(self) -> Cell:
        return self.glob

    @property
    def target(self) -> Cell:
        return self.deployment.cell("na")

    def sync_back(self, **kw: Any) -> exchange.SyncReport:
        return self.sync("na", "global", **kw)

    def j_rows(self) -> int:
        """Rows of J in the source that are not parts of guest copies (the purge's scan)."""
        return sum(count(self.source, t.name, of_j(t.name, MOVING)) for t in DATA_MAP.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[World, str]]:
    if request.param == "sqlite":
        storage, target_storage = "sqlite", "sqlite"
    else:
        server = request.getfixturevalue("pg_server")
        storage, target_storage = server.fresh_url("src"), server.fresh_url("tgt")
    deployment = init_data_dir(tmp_path / "data", one_cell_policy(storage))
    made = World(TestClient(create_app(deployment)), deployment, tmp_path)
    yield made, target_storage
    made.client.close()
    made.deployment.close()


def _populate(w: World) -> dict[str, dict[str, str]]:
    people = {name: w.signup(c) for name, c in (("ca", "CA"), ("us", "US"), ("gb", "GB"))}
    vids = [w.upload(people[name], seed)["id"] for seed, name in enumerate(("ca", "us", "gb"))]
    for who in people.values():  # the recommender retrains on each side from these
        batch = [{"video_id": v, "kind": "watch", "watched_ms": 700} for v in vids]
        posted = w.client.post("/v1/events", headers=auth(who), json={"events": batch})
        assert posted.status_code == 202
    return people


def _offered_ids(w: World) -> set[str]:
    return {v.id for v in exchange.offered(w.target)}


def test_the_source_gets_guest_copies_of_the_carved_cells_videos(
    world: tuple[World, str],
) -> None:
    w, target_storage = world
    people = _populate(w)
    outcome = carve.run(
        w.deployment, carve.start(w.deployment, MOVING, "na", storage=target_storage)
    )
    assert outcome.purge is not None and outcome.purge.remaining_rows == 0
    carved = _offered_ids(w)
    assert carved and count(w.source, "videos", VIDEOS.c.id.in_(carved)) == 0

    report = w.sync_back()
    assert report.ok, report.failures
    assert sum(report.copied.values()) == len(carved)
    held = {g.video_id for g in exchange.guests(w.source)}
    assert held == carved
    with w.source.store.connect() as conn:
        doms = {
            r[0] for r in conn.execute(sa.select(VIDEOS.c.domicile).where(VIDEOS.c.id.in_(carved)))
        }
    assert doms <= set(MOVING)  # the copies carry the origin's domicile

    # Served to a staying user, in the video endpoint and the feed.
    gb = people["gb"]
    some = min(carved)
    seen = w.client.get(f"/v1/videos/{some}", headers=auth(gb))
    assert seen.status_code == 200 and seen.json()["guest_of"] == "na"
    # (gb watched them before the carve, and a feed leaves out what its viewer has watched.)
    feed = w.client.get("/v1/feed", headers=auth(w.signup("GB"))).json()["items"]
    assert carved <= {i["video"]["id"] for i in feed}
    assert w.client.put(f"/v1/videos/{some}/like", headers=auth(gb)).status_code == 200

    # The serving path still cannot write J into the source: directly through the store...
    for table, row in (
        (
            "users",
            {
                "id": new_id(),
                "domicile": "US",
                "password_hash": "",
                "status": "active",
                "created_at": now_ms(),
            },
        ),
        ("videos", {**_row(w.source, "videos", some), "id": new_id(), "origin_cell": None}),
        ("videos", {**_row(w.source, "videos", some), "id": new_id()}),  # no guest entry
    ):
        with pytest.raises(sa.exc.DBAPIError) as refused, w.source.store.begin() as conn:
            conn.execute(sa.insert(TABLES[table]).values(row))
        assert is_moved_error(refused.value)
    # ... and through the API, which routes J to the carved cell.
    newcomer = w.signup("US")
    assert count(w.source, "users", USERS.c.id == newcomer["id"]) == 0
    assert count(w.target, "users", USERS.c.id == newcomer["id"]) == 1
    assert w.upload(newcomer, 7)["id"] not in _ids(w.source)

    # The source's own moderator acts on a guest copy: a report, then a decision against it.
    mod = w.signup("GB")
    staff.grant(w.source, mod["id"], "moderator", "tests")
    item = w.client.post(
        "/v1/reports",
        headers=auth(gb),
        json={"target_kind": "video", "target_id": some, "reason": "not for here"},
    )
    assert item.status_code == 201, item.text
    queue = w.client.get(
        "/v1/moderation/queue", headers={**auth(mod), "X-Access-Purpose": "reviewing reports"}
    )
    assert queue.status_code == 200, queue.text
    assert [i["id"] for i in queue.json()] == [item.json()["id"]]
    r = w.client.post(
        f"/v1/moderation/queue/{item.json()['id']}/decision",
        headers=auth(mod),
        json={
            "visibility": "rejected",
            "facts": "breaks our terms",
            "ground": "terms",
            "rule": "local terms",
        },
    )
    assert r.status_code == 200, r.text
    assert w.client.get(f"/v1/videos/{some}", headers=auth(gb)).status_code == 404
    decisions = TABLES["moderation_decisions"]
    mine = count(
        w.source,
        "moderation_decisions",
        decisions.c.target_id == some,
        decisions.c.reviewer_id == mod["id"],
        decisions.c.domicile.in_(MOVING),  # the content's domicile, let through the seal
    )
    assert mine == 1
    # Re-moderation of the copies held: the reviewer's decision stands, the rest screened again.
    again = w.sync_back(remoderate_kept=True)
    assert again.ok and again.kept == len(carved) and again.remoderated == len(carved)
    assert w.client.get(f"/v1/videos/{some}", headers=auth(gb)).status_code == 404

    # The purge's scan, run again: no row of J left, the guest copies untouched.
    before = {t.name: count(w.source, t.name) for t in DATA_MAP.tables}
    held = {g.video_id for g in exchange.guests(w.source)}  # the newcomer's video came too
    rescan = purge(w.source, MOVING, "na")
    assert rescan.remaining_rows == 0 and sum(rescan.rows.values()) == 0
    after = {t.name: count(w.source, t.name) for t in DATA_MAP.tables}
    assert after == before
    assert {g.video_id for g in exchange.guests(w.source)} == held == _offered_ids(w)

    # Withdrawal: the creator deletes their video in the carved cell; the next sync removes the
    # copy from the source, every part of it.
    us_video = _video_of(w.target, people["us"]["id"])
    sha = exchange.guest(w.source, us_video).sha256
    assert w.client.delete(f"/v1/videos/{us_video}", headers=auth(people["us"])).status_code == 204
    gone = w.sync_back()
    assert gone.withdrawn == {"deleted at the origin": 1}
    assert exchange.guest(w.source, us_video) is None
    for table, col in (
        ("videos", "id"),
        ("video_stats", "video_id"),
        ("video_restrictions", "video_id"),
    ):
        assert count(w.source, table, TABLES[table].c[col] == us_video) == 0
    assert w.client.get(f"/v1/videos/{us_video}", headers=auth(gb)).status_code == 404
    # The withdrawn file, unless another copy of the same domicile still uses it.
    still = [g for g in exchange.guests(w.source) if g.sha256 == sha]
    assert (count(w.source, "blobs", TABLES["blobs"].c.sha256 == sha) == 0) == (not still)
    assert w.j_rows() == 0


def _row(cell: Cell, table: str, key: str) -> dict[str, Any]:
    tbl = TABLES[table]
    with cell.store.connect() as conn:
        return dict(conn.execute(sa.select(tbl).where(tbl.c.id == key)).one()._mapping)


def _ids(cell: Cell) -> set[str]:
    with cell.store.connect() as conn:
        return {r[0] for r in conn.execute(sa.select(VIDEOS.c.id))}


def _video_of(cell: Cell, creator: str) -> str:
    with cell.store.connect() as conn:
        return str(
            conn.execute(
                sa.select(VIDEOS.c.id)
                .where(VIDEOS.c.creator_id == creator)
                .order_by(VIDEOS.c.id)
                .limit(1)
            ).scalar_one()
        )


def test_a_guest_copy_received_between_cutover_and_purge_survives_the_purge(
    world: tuple[World, str],
) -> None:
    w, target_storage = world
    people = _populate(w)
    spec = carve.start(w.deployment, MOVING, "na", storage=target_storage)
    carve.run(w.deployment, spec, through=Phase.CUTOVER)

    # After the switch a carved user uploads a new file, and one whose file the source still
    # holds as its own (of US: the carve's purge has not run).
    fresh = w.upload(people["us"], 11)["id"]
    same_file = w.upload(people["us"], 1)["id"]
    early = w.sync_back()
    # The carved videos are still the source's own rows: not guest content yet.
    assert sum(early.copied.values()) == 1 and exchange.guest(w.source, fresh) is not None
    assert [f for f in early.failures if same_file in f and "purge is due" in f] == early.failures
    assert len(early.failures) == 1
    gb = people["gb"]
    assert w.client.get(f"/v1/videos/{fresh}", headers=auth(gb)).json()["guest_of"] == "na"
    parts = {
        table: count(w.source, table, cond)
        for table in exchange.GUEST_PARTS
        if (cond := exchange.guest_part(table)) is not None
    }
    assert parts["videos"] == 1 and parts["blobs"] == 1 and parts["video_stats"] == 1

    outcome = carve.run(w.deployment, spec)
    assert outcome.verify is not None and outcome.verify.ok, outcome.verify.mismatches
    assert outcome.leaks is not None and outcome.leaks.leaks == 0
    assert outcome.purge is not None and outcome.purge.remaining_rows == 0
    # The copy survived, whole, and is served.
    assert exchange.guest(w.source, fresh) is not None
    for table, n in parts.items():
        cond = exchange.guest_part(table)
        assert cond is not None and count(w.source, table, cond) == n, table
    sha = exchange.guest(w.source, fresh).sha256
    assert sha in set(w.source.blobs.list())
    assert w.client.get(f"/v1/videos/{fresh}", headers=auth(gb)).status_code == 200

    # With J purged, the next sync copies the rest, the shared file included.
    later = w.sync_back()
    assert later.ok, later.failures
    assert {g.video_id for g in exchange.guests(w.source)} == _offered_ids(w)
    assert w.j_rows() == 0


OLD_PG_SEAL = """
CREATE OR REPLACE FUNCTION carve_seal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    codes text[] := TG_ARGV[1:TG_NARGS - 1];
BEGIN
    IF ((TG_OP <> 'DELETE' AND NEW.domicile = ANY(codes))
        OR (TG_OP <> 'INSERT' AND OLD.domicile = ANY(codes)))
       AND current_setting('carveout.purging', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION USING MESSAGE = TG_ARGV[0];
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$
"""


def _old_seal(cell: Cell) -> None:
    """The seal as versions before guest copies installed it (every row of J refused)."""
    with cell.store.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(OLD_PG_SEAL)
            return
        for t in DATA_MAP.tables:
            if t.name == "video_stats":
                continue
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS carve_seal_{t.name}_insert")
            conn.exec_driver_sql(
                f"CREATE TRIGGER carve_seal_{t.name}_insert BEFORE INSERT ON {t.name} "
                "WHEN NEW.domicile IN ('CA', 'US') "
                "BEGIN SELECT RAISE(ABORT, 'carveout:moved:na'); END"
            )


def test_a_seal_from_an_older_version_is_upgraded_in_place(world: tuple[World, str]) -> None:
    w, target_storage = world
    _populate(w)
    carve.run(w.deployment, carve.start(w.deployment, MOVING, "na", storage=target_storage))
    _old_seal(w.source)
    refused = w.sync_back()
    assert refused.copied == {} and refused.failures
    assert all("installed by an older version" in f for f in refused.failures)
    assert exchange.guests(w.source) == []

    # As an operator upgrading does it: `carveout carve reseal`.
    cli = CliRunner().invoke(app, ["carve", "reseal", "--data-dir", str(w.deployment.data_dir)])
    assert cli.exit_code == 0, cli.output
    assert "resealed the source of the carve into 'na'" in cli.output
    assert upgrade_seals(w.deployment) == ["na"]  # idempotent
    report = w.sync_back()
    assert report.ok and {g.video_id for g in exchange.guests(w.source)} == _offered_ids(w)
    # Still sealed against everything else of J.
    with pytest.raises(sa.exc.DBAPIError) as sealed, w.source.store.begin() as conn:
        conn.execute(
            sa.insert(USERS).values(
                id=new_id(), domicile="CA", password_hash="", status="active", created_at=now_ms()
            )
        )
    assert is_moved_error(sealed.value)
