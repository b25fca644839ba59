"""PostgreSQL to PostgreSQL: how capture subscribes the target. A table with no row of J when
the slot is made is subscribed without an initial copy (no synchronisation worker for it), yet
every row of J written to it afterwards reaches the target; and a capture stopped between the
subscription's steps finishes them when the carve resumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from populated import populate

from carveout import carve
from carveout.api import create_app
from carveout.carve import replication
from carveout.carve.capture import carved_tables
from carveout.cells import Cell, Deployment, init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.datamap import TABLES
from carveout.storage import PgCluster, table_digest

MOVING = ("CA", "US")


@pytest.fixture
def deployment(tmp_path: Path, pg_server: PgCluster) -> Iterator[Deployment]:
    made = init_data_dir(
        tmp_path / "data", one_cell_policy(pg_server.fresh_url("src"), content_exchange=False)
    )
    try:
        yield made
    finally:
        made.close()


def _sync_states(target: Cell) -> dict[str, tuple[str, bool]]:
    """Each subscribed table's state and whether a synchronisation worker copied it (a table
    subscribed without a copy has no sync LSN)."""
    with target.store.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.relname, r.srsubstate, r.srsublsn IS NOT NULL FROM pg_subscription_rel r "
            "JOIN pg_class c ON c.oid = r.srrelid"
        ).all()
    return {str(name): (str(state), bool(synced)) for name, state, synced in rows}


def _follows_of(cell: Cell, user_id: str) -> list[str]:
    follows = TABLES["follows"]
    with cell.store.connect() as conn:
        stmt = sa.select(follows.c.followee_id).where(follows.c.follower_id == user_id)
        return [str(r[0]) for r in conn.execute(stmt)]


def _publications(deployment: Deployment) -> list[str]:
    with deployment.cell("global").store.connect() as conn:
        rows = conn.exec_driver_sql("SELECT pubname FROM pg_publication").all()
    return sorted(str(r[0]) for r in rows)


@pytest.mark.postgres
def test_a_table_with_no_rows_of_j_is_not_copied_and_still_receives_them(
    tmp_path: Path, pg_server: PgCluster, deployment: Deployment
) -> None:
    client = TestClient(create_app(deployment))
    users = populate(client, tmp_path)  # no follows yet
    spec = carve.start(deployment, MOVING, "na", storage=pg_server.fresh_url("tgt"))
    carve.run(deployment, spec, through=carve.Phase.CAPTURE)
    assert len(_publications(deployment)) == len(replication.publications("na"))
    target = carve.open_target(deployment, spec)
    assert _sync_states(target)["follows"] == ("r", False)  # ready at once, nothing copied
    # A moving user follows another moving user; a staying user follows a staying one.
    for who, whom in (("u0", "u1"), ("u2", "u3")):
        h = {"Authorization": users[who]["Authorization"]}
        r = client.put(f"/v1/users/{users[whom]['id']}/follow", headers=h)
        assert r.status_code == 200, r.text
    target.store.dispose()
    carve.run(deployment, spec, through=carve.Phase.CATCHUP)
    target = carve.open_target(deployment, spec)
    states = _sync_states(target)
    assert states["follows"] == ("r", False)
    assert states["events"] == ("r", True)  # J's rows there: copied by a sync worker
    assert _follows_of(target, users["u0"]["id"]) == [users["u1"]["id"]]
    assert _follows_of(target, users["u2"]["id"]) == []
    target.store.dispose()
    carve.abort(deployment, spec)
    assert _publications(deployment) == []


_STEPS = ("ADD PUBLICATION", "ENABLE", "REFRESH PUBLICATION")


@pytest.mark.postgres
@pytest.mark.parametrize("step", _STEPS)
def test_a_capture_stopped_between_the_subscriptions_steps_finishes_them_on_resume(
    tmp_path: Path,
    pg_server: PgCluster,
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    client = TestClient(create_app(deployment))
    populate(client, tmp_path)
    spec = carve.start(deployment, MOVING, "na", storage=pg_server.fresh_url("tgt"))
    real = psycopg.Connection.execute

    def stop_at_step(self: psycopg.Connection[Any], query: Any, *args: Any, **kw: Any) -> Any:
        text = str(query.as_string(self) if isinstance(query, psycopg.sql.Composable) else query)
        if text.endswith(" ENABLE") if step == "ENABLE" else step in text:
            raise RuntimeError(f"stopped before {step}")
        return real(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Connection, "execute", stop_at_step)
    with pytest.raises(Exception, match=f"stopped before {step}"):
        carve.run(deployment, spec, through=carve.Phase.CAPTURE)
    monkeypatch.setattr(psycopg.Connection, "execute", real)
    outcome = carve.run(deployment, spec, through=carve.Phase.VERIFY)  # as `resume` would
    assert outcome.verify is not None and outcome.verify.ok
    target = carve.open_target(deployment, spec)
    assert set(_sync_states(target).values()) <= {("r", False), ("r", True)}
    source = deployment.cell("global")
    for table in ("users", "events", "likes", "comments"):
        moving = TABLES[table].c.domicile.in_(MOVING)
        assert table_digest(target.store, table) == table_digest(source.store, table, moving)
    target.store.dispose()


@pytest.mark.postgres
def test_a_capture_begun_with_one_publication_of_every_table_resumes_on_it(
    tmp_path: Path, pg_server: PgCluster, deployment: Deployment
) -> None:
    """A carve begun by a carveout from before the per-table publications, stopped inside
    capture after its subscription was made: resumed by this one, it carries on with its one
    publication (made before its slot) and subscribes to none made later, which the slot's
    decoding could not see; the carve verifies, and the cutover drops that publication too."""
    client = TestClient(create_app(deployment))
    populate(client, tmp_path)
    spec = carve.start(deployment, MOVING, "na", storage=pg_server.fresh_url("tgt"))
    source = deployment.cell("global")
    target = carve.open_target(deployment, spec)
    name = replication.names("na")
    in_j = " OR ".join(f"domicile = '{c}'" for c in MOVING)
    tables = [t.name for t in carved_tables()]
    # What the older capture left: one publication, the slot, the subscription copying.
    with psycopg.connect(replication._dsn(source.store.dsn()), autocommit=True) as conn:
        for table in tables:
            conn.execute(f'ALTER TABLE "{table}" REPLICA IDENTITY FULL')
        each = ", ".join(f'"{t}" WHERE ({in_j})' for t in tables)
        conn.execute(f'CREATE PUBLICATION "{name}" FOR TABLE {each}')
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
    conninfo = replication._conninfo(source.store.dsn())
    with psycopg.connect(replication._dsn(target.store.dsn()), autocommit=True) as conn:
        conn.execute(
            f'CREATE SUBSCRIPTION "{name}" CONNECTION \'{conninfo}\' PUBLICATION "{name}" '
            f"WITH (create_slot = false, slot_name = '{name}', synchronous_commit = 'on')"
        )
    target.store.dispose()
    carve.run(deployment, spec, through=carve.Phase.CATCHUP)  # as `resume` would
    target = carve.open_target(deployment, spec)
    with target.store.connect() as conn:
        subscribed = conn.exec_driver_sql("SELECT subpublications FROM pg_subscription").all()
    assert [list(r[0]) for r in subscribed] == [[name]]
    assert {state for state, _copied in _sync_states(target).values()} == {"r"}
    target.store.dispose()
    outcome = carve.run(deployment, spec, through=carve.Phase.VERIFY)
    assert outcome.verify is not None and outcome.verify.ok
    target = carve.open_target(deployment, spec)
    for table in ("users", "events", "likes", "comments"):
        moving = TABLES[table].c.domicile.in_(MOVING)
        assert table_digest(target.store, table) == table_digest(source.store, table, moving)
    target.store.dispose()
    assert _publications(deployment) == []  # the cutover dropped that publication too
