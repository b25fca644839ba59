"""The carve across backends: PostgreSQL to PostgreSQL and SQLite to PostgreSQL, with writes
landing while it runs. Small data made through the API, so each path runs in seconds."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from populated import populate

from carveout import carve
from carveout.api import create_app
from carveout.cells import init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import PgCluster, table_digest


@pytest.mark.postgres
@pytest.mark.parametrize("source_backend", ["postgresql", "sqlite"])
def test_carve_into_postgresql_under_writes(
    tmp_path: Path, pg_server: PgCluster, source_backend: str
) -> None:
    storage = pg_server.fresh_url("src") if source_backend == "postgresql" else "sqlite"
    deployment = init_data_dir(tmp_path / "data", one_cell_policy(storage, content_exchange=False))
    try:
        client = TestClient(create_app(deployment))
        users = populate(client, tmp_path)
        source = deployment.cell("global")
        moving = ("CA", "US")
        stop = threading.Event()
        acked: dict[str, int] = {}
        failures: list[str] = []

        def writer(name: str) -> None:
            who = users[name]
            h = {"Authorization": who["Authorization"]}
            n = 0
            while not stop.is_set():
                r = client.post(
                    f"/v1/videos/{vid_of[name]}/comments", headers=h, json={"body": f"{name}-{n}"}
                )
                if r.status_code == 201:
                    n += 1
                else:
                    failures.append(r.text)
            acked[name] = n

        with source.store.connect() as conn:
            rows = conn.execute(sa.select(TABLES["videos"].c.creator_id, TABLES["videos"].c.id))
            by_creator = {r[0]: r[1] for r in rows}
        vid_of = {name: by_creator[who["id"]] for name, who in users.items()}
        threads = [threading.Thread(target=writer, args=(n,)) for n in ("u0", "u2")]
        for t in threads:
            t.start()
        try:
            spec = carve.start(deployment, moving, "na", storage=pg_server.fresh_url("tgt"))
            outcome = carve.run(deployment, spec)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert outcome.verify is not None and outcome.verify.ok
        assert outcome.leaks is not None and outcome.leaks.leaks == 0
        assert outcome.purge is not None and outcome.purge.remaining_rows == 0
        target = deployment.cell("na")
        assert target.store.backend == "postgresql"
        comments = TABLES["comments"]
        for name, cell in (("u0", target), ("u2", source)):
            with cell.store.connect() as conn:
                rows = conn.execute(
                    sa.select(comments.c.user_id, comments.c.body).where(
                        comments.c.user_id == users[name]["id"]
                    )
                ).all()
            # Sealed bodies open only where the author's key is: the carved user's key moved.
            opened = cell.vault.open_rows(DATA_MAP.table("comments"), rows)
            bodies: Any = [c["body"] for c in opened if c["body"].startswith(f"{name}-")]
            assert sorted(bodies) == sorted(f"{name}-{i}" for i in range(acked[name])), name
        users_tbl = TABLES["users"]
        assert table_digest(source.store, "users", users_tbl.c.domicile.in_(moving))[0] == 0
        assert table_digest(target.store, "users")[0] == 3
    finally:
        deployment.close()


@pytest.mark.postgres
def test_replication_logs_the_videos_whose_counters_the_subscription_changed(
    tmp_path: Path, pg_server: PgCluster
) -> None:
    """The PostgreSQL cutover counts again only the videos the subscription touched after the
    rebuild before its pause: the log must hold every such video and nothing written locally."""
    from carveout.carve import replication, touched
    from carveout.core import now_ms
    from carveout.events import recompute_all

    deployment = init_data_dir(
        tmp_path / "data", one_cell_policy(pg_server.fresh_url("src"), content_exchange=False)
    )
    try:
        client = TestClient(create_app(deployment))
        users = populate(client, tmp_path)
        source = deployment.cell("global")
        videos = TABLES["videos"]
        with source.store.connect() as conn:
            by_creator = dict(conn.execute(sa.select(videos.c.creator_id, videos.c.id)).all())
        moving, staying = by_creator[users["u0"]["id"]], by_creator[users["u2"]["id"]]
        spec = carve.start(deployment, ("CA", "US"), "na", storage=pg_server.fresh_url("tgt"))
        carve.run(deployment, spec, through=carve.Phase.CATCHUP)
        target = carve.open_target(deployment, spec)
        touched.watch(target)
        recompute_all(target.store, now_ms())  # local writes: not logged
        # A moving user watches a moving video: replicated, its counters are due again. A
        # staying user's watch of it stays behind (events are the acting user's), and so do
        # writes of staying videos: neither touches the target.
        for who, video in (("u0", moving), ("u2", moving), ("u2", staying)):
            h = {"Authorization": users[who]["Authorization"]}
            event = {"video_id": video, "kind": "watch", "watched_ms": 500}
            assert client.post("/v1/events", headers=h, json={"events": [event]}).status_code == 202
        # The private server commits with synchronous_commit = off: the position the wait
        # flushes must still cover the writes just acknowledged (not the WAL write position,
        # which trailed them by up to the WAL writer's 200 ms and let this wait end early).
        with replication.catching_up(source, "na") as caught:
            caught.wait()
        assert touched.take(target) == {moving}
        assert touched.take(target) == set()  # taken off the log
        event = {"video_id": moving, "kind": "watch", "watched_ms": 700}
        h = {"Authorization": users["u0"]["Authorization"]}
        assert client.post("/v1/events", headers=h, json={"events": [event]}).status_code == 202
        with replication.catching_up(source, "na") as caught:
            caught.wait()
        assert touched.take(target) == {moving}  # touched again: logged again
        touched.unwatch(target)
        with target.store.connect() as conn:
            left = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'carve_touch'"
            ).scalar_one()
            table = conn.exec_driver_sql("SELECT to_regclass('carve_touched')").scalar_one()
        assert left == 0 and table is None
        target.store.dispose()
        carve.abort(deployment, spec)
    finally:
        deployment.close()


def _indexes(cell: Any) -> set[tuple[str, str]]:
    with cell.store.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        ).all()
    return {(str(name), str(ddl)) for name, ddl in rows}


@pytest.mark.postgres
def test_the_copy_builds_again_every_index_it_dropped_also_after_a_stop(
    tmp_path: Path, pg_server: PgCluster
) -> None:
    """The target's secondary indexes are dropped for the subscription's initial copy: a carve
    stopped right after capture (indexes gone) and resumed must end the copy phase with the
    schema's every index, as a freshly migrated cell has them."""
    deployment = init_data_dir(
        tmp_path / "data", one_cell_policy(pg_server.fresh_url("src"), content_exchange=False)
    )
    try:
        client = TestClient(create_app(deployment))
        populate(client, tmp_path)
        source = deployment.cell("global")
        spec = carve.start(deployment, ("CA", "US"), "na", storage=pg_server.fresh_url("tgt"))
        carve.run(deployment, spec, through=carve.Phase.CAPTURE)
        target = carve.open_target(deployment, spec)
        during = _indexes(target)
        assert {n for n, _ in _indexes(source)} - {n for n, _ in during} >= {
            "ix_events_video_id",
            "ix_follows_followee_id",
        }
        assert "uq_follows_follower_id_followee_id" in {n for n, _ in during}
        target.store.dispose()
        carve.run(deployment, spec, through=carve.Phase.COPY)  # as `carve resume` would
        target = carve.open_target(deployment, spec)
        assert _indexes(target) == _indexes(source)
        target.store.dispose()
        carve.abort(deployment, spec)
    finally:
        deployment.close()


@pytest.mark.postgres
@pytest.mark.parametrize("source_backend", ["postgresql", "sqlite"])
def test_verify_names_a_target_row_that_differs_and_passes_once_it_is_mended(
    tmp_path: Path, pg_server: PgCluster, source_backend: str
) -> None:
    """PostgreSQL to PostgreSQL hashes each chunk in the databases, SQLite to PostgreSQL in
    Python: either way one changed value in one target row is a mismatch of its table, a row
    changed through the target's capture log (a write after the switch) is not, and the same
    rows again verify clean."""
    from carveout.carve import verify as verify_mod

    storage = pg_server.fresh_url("src") if source_backend == "postgresql" else "sqlite"
    deployment = init_data_dir(tmp_path / "data", one_cell_policy(storage, content_exchange=False))
    try:
        populate(TestClient(create_app(deployment)), tmp_path)
        spec = carve.start(deployment, ("CA", "US"), "na", storage=pg_server.fresh_url("tgt"))
        carve.run(deployment, spec, through=carve.Phase.CUTOVER)
        source, target = deployment.cell("global"), deployment.cell("na")
        codes = ("CA", "US")
        comments = TABLES["comments"]

        def fresh_verify() -> verify_mod.VerifyReport:
            with target.store.begin() as conn:
                state = TABLES["carve_state"]
                conn.execute(state.delete().where(state.c.key.startswith("verify:")))
            return verify_mod.verify(source, target, codes)

        clean = fresh_verify()
        assert clean.ok and clean.tables["comments"] > 0, clean.mismatches
        with target.store.begin() as conn:
            one = conn.execute(sa.select(comments.c.id).limit(1)).scalar_one()
            conn.execute(comments.update().where(comments.c.id == one).values(status="hidden"))
            # Not a write after the switch: taken off the capture log, as a copy error would be.
            conn.exec_driver_sql("DELETE FROM carve_changes WHERE table_name = 'comments'")
        tampered = fresh_verify()
        assert [m.split(":")[0] for m in tampered.mismatches] == ["comments"]
        with target.store.begin() as conn:
            conn.execute(
                sa.insert(TABLES["carve_changes"]).values(
                    table_name="comments", row_pk=one, domicile="CA", op="update"
                )
            )
        logged = fresh_verify()
        assert logged.ok, logged.mismatches  # a logged write after the switch is left out
        with target.store.begin() as conn:
            conn.exec_driver_sql("DELETE FROM carve_changes WHERE table_name = 'comments'")
            conn.execute(comments.update().where(comments.c.id == one).values(status="visible"))
        mended = fresh_verify()
        assert mended.ok, mended.mismatches
        target.store.dispose()
    finally:
        deployment.close()
