"""Writes held at a cutover's fence wait on the event loop, not in worker threads: with more
writes held than the server has threads, other jurisdictions' writes still go through."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from carveout.api import create_app
from carveout.cells import (
    POLICY_FILE,
    CellSpec,
    Fence,
    FenceBoard,
    init_data_dir,
    registry,
    with_new_cell,
    write_policy_atomically,
)
from carveout.cells import gateway as gateway_module
from carveout.storage import PgCluster


def _signup_body(handle: str, country: str) -> dict[str, object]:
    return {
        "handle": handle,
        "display_name": handle,
        "email": f"{handle}@example.com",
        "password": "correct horse battery",
        "birth_year": 1990,
        "country": country,
    }


async def _signup(client: httpx.AsyncClient, handle: str, country: str) -> tuple[str, str]:
    r = await client.post("/v1/users", json=_signup_body(handle, country))
    assert r.status_code == 201, r.text
    return str(r.json()["user"]["id"]), str(r.json()["token"])


def test_held_writes_do_not_take_the_threads_other_jurisdictions_need(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    app = create_app(deployment)
    fences = FenceBoard(deployment.data_dir)

    async def main() -> None:
        threads = anyio.to_thread.current_default_thread_limiter().total_tokens
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ca_ids, ca_tokens = zip(
                *[await _signup(client, f"ca{i}", "CA") for i in range(4)], strict=True
            )
            gb_id, gb_token = await _signup(client, "gb0", "GB")
            fences.raise_fence(Fence("na-anz", frozenset({"CA"}), 0))
            # More held CA writes than the server has worker threads.
            held = [
                asyncio.create_task(
                    client.put(
                        f"/v1/users/{gb_id}/follow",
                        headers={"Authorization": f"Bearer {ca_tokens[i % 4]}"},
                    )
                )
                for i in range(int(threads) + 10)
            ]
            await asyncio.sleep(0.2)
            assert not any(t.done() for t in held)  # held at the fence, none failed
            staying = await client.put(
                f"/v1/users/{ca_ids[0]}/follow", headers={"Authorization": f"Bearer {gb_token}"}
            )
            assert staying.status_code == 200 and staying.json()["changed"] is True
            assert not any(t.done() for t in held)  # the GB write went through under the fence
            fences.release()
            answers = await asyncio.gather(*held)
        assert [r.status_code for r in answers] == [200] * len(held)
        assert sum(r.json()["changed"] for r in answers) == 4  # each CA user's follow, once

    try:
        asyncio.run(main())
    finally:
        deployment.close()


def _target(storage: str = "sqlite") -> CellSpec:
    return CellSpec(
        name="na-anz",
        jurisdictions=("CA",),
        serves_rest=False,
        primary_site="us",
        backup_site=None,
        content_exchange=False,
        storage=storage,
    )


def test_a_held_write_opens_the_target_before_the_switch(tmp_path: Path) -> None:
    """While writes wait, the server opens the cell the fence names, so the released writes
    find it open; once the policy names it, that very cell serves them."""
    deployment = init_data_dir(tmp_path / "data")
    app = create_app(deployment)
    fences = FenceBoard(deployment.data_dir)
    target = _target()
    db = deployment.data_dir / "cells" / "na-anz" / "cell.db"

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ca_id, ca_token = await _signup(client, "ca0", "CA")
            gb_id, _gb_token = await _signup(client, "gb0", "GB")
            fences.raise_fence(Fence("na-anz", frozenset({"CA"}), 0, target=target))
            raised = fences.current()  # the spec round-trips through the fence file
            assert raised is not None and raised.target == target
            held = asyncio.create_task(
                client.put(
                    f"/v1/users/{gb_id}/follow", headers={"Authorization": f"Bearer {ca_token}"}
                )
            )
            for _ in range(200):  # opened on a thread while the write waits
                if db.is_file():
                    break
                await asyncio.sleep(0.01)
            assert db.is_file() and not held.done()
            fences.release()
            # No switch in this test: the write goes where the policy still sends it.
            assert (await held).status_code == 200
        assert ca_id

    try:
        asyncio.run(main())
        prepared = deployment.prepare(target)  # already open: the same cell again
        assert deployment.prepare(target) is prepared
        write_policy_atomically(
            deployment.data_dir / POLICY_FILE, with_new_cell(deployment.policy, target)
        )
        deployment.refresh_policy()
        assert deployment.cell("na-anz") is prepared
    finally:
        deployment.close()


def test_a_prepared_cell_whose_spec_changed_is_opened_again(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    try:
        prepared = deployment.prepare(_target())
        named = _target()
        named = CellSpec(**{**named.__dict__, "jurisdictions": ("CA", "US")})
        write_policy_atomically(
            deployment.data_dir / POLICY_FILE, with_new_cell(deployment.policy, named)
        )
        deployment.refresh_policy()
        cell = deployment.cell("na-anz")
        assert cell is not prepared and cell.spec == named
    finally:
        deployment.close()


def test_a_cell_asked_for_while_it_is_being_prepared_is_opened_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Released writes that ask for the target while the server is still opening it wait for
    that open (and no other cell's requests wait meanwhile); before, each opened it again
    while holding the lock every request takes."""
    deployment = init_data_dir(tmp_path / "data")
    opening, go_on = threading.Event(), threading.Event()
    opened: list[str] = []
    real_open = registry.open_cell

    def slow_open(data_dir: Path, spec: CellSpec) -> registry.Cell:
        opened.append(spec.name)
        if spec.name == "na-anz":
            opening.set()
            assert go_on.wait(30)
        return real_open(data_dir, spec)

    monkeypatch.setattr(registry, "open_cell", slow_open)
    target = _target()
    try:
        deployment.cell("global")
        with ThreadPoolExecutor(2) as pool:
            prepared = pool.submit(deployment.prepare, target)
            assert opening.wait(30)
            write_policy_atomically(
                deployment.data_dir / POLICY_FILE, with_new_cell(deployment.policy, target)
            )
            deployment.refresh_policy()
            asked = pool.submit(deployment.cell, "na-anz")
            # Other cells are served while the target is being opened.
            assert deployment.cell("global").name == "global"
            assert not asked.done()
            go_on.set()
            assert asked.result(30) is prepared.result(30)
        assert opened.count("na-anz") == 1
    finally:
        go_on.set()
        deployment.close()


def _wait_for(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_announced_cutover_opens_the_target_before_any_fence(tmp_path: Path) -> None:
    """A write of any jurisdiction that sees a cutover announced opens its target on a thread
    (no fence up, nothing held); when the announcement goes without a switch (the carve was
    aborted) the next write lets the opened cell go."""
    deployment = init_data_dir(tmp_path / "data")
    client = TestClient(create_app(deployment))
    fences = FenceBoard(deployment.data_dir)
    target = _target()
    db = deployment.data_dir / "cells" / "na-anz" / "cell.db"
    try:
        gb = client.post("/v1/users", json=_signup_body("gb0", "GB"))
        headers = {"Authorization": f"Bearer {gb.json()['token']}"}
        fences.announce(Fence("na-anz", frozenset({"CA"}), 0, target=target))
        told = fences.announced()  # the spec round-trips through the announcement file
        assert fences.current() is None and told is not None and told.target == target
        r = client.patch("/v1/me", json={"display_name": "GB zero"}, headers=headers)
        assert r.status_code == 200  # never held: GB is not moving, and nothing is fenced
        assert _wait_for(lambda: "na-anz" in deployment._prepared)
        assert db.is_file()
        fences.release()  # the announcement goes with the fence
        assert fences.announced() is None
        r = client.patch("/v1/me", json={"display_name": "GB 0"}, headers=headers)
        assert r.status_code == 200
        assert "na-anz" not in deployment._prepared
    finally:
        client.close()
        deployment.close()


@pytest.mark.postgres
def test_an_announced_postgresql_target_gets_a_pool_of_connections(
    tmp_path: Path, pg_server: PgCluster
) -> None:
    deployment = init_data_dir(tmp_path / "data")
    client = TestClient(create_app(deployment))
    fences = FenceBoard(deployment.data_dir)
    url = pg_server.fresh_url()
    database = sa.make_url(url).database
    target = _target(url)

    def backends() -> int:
        admin = sa.create_engine(sa.make_url(url).set(database="postgres"))
        try:
            with admin.connect() as conn:
                count = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": database},
                ).scalar_one()
        finally:
            admin.dispose()
        return int(count)

    try:
        gb = client.post("/v1/users", json=_signup_body("gb0", "GB"))
        headers = {"Authorization": f"Bearer {gb.json()['token']}"}
        fences.announce(Fence("na-anz", frozenset({"CA"}), 0, target=target))
        r = client.patch("/v1/me", json={"display_name": "GB zero"}, headers=headers)
        assert r.status_code == 200
        assert _wait_for(lambda: backends() >= registry.PREPARED_CONNECTIONS)
    finally:
        client.close()
        deployment.close()
        fences.release()


def test_a_write_held_past_the_timeout_is_refused_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fence left up (a carve died mid-cutover) does not hold writes forever: 503, retry."""
    monkeypatch.setattr(gateway_module, "HOLD_TIMEOUT_S", 0.3)
    deployment = init_data_dir(tmp_path / "data")
    client = TestClient(create_app(deployment))
    fences = FenceBoard(deployment.data_dir)
    try:
        ca = client.post("/v1/users", json=_signup_body("ca0", "CA"))
        headers = {"Authorization": f"Bearer {ca.json()['token']}"}
        fences.raise_fence(Fence("na-anz", frozenset({"CA"}), 0))
        r = client.patch("/v1/me", json={"display_name": "never"}, headers=headers)
        assert r.status_code == 503
        assert "paused by a carve cutover" in r.json()["detail"]
        fences.release()
        me = client.get("/v1/me", headers=headers).json()
        assert me["display_name"] == "ca0"  # the refused write left nothing
    finally:
        client.close()
        deployment.close()


def test_held_writes_share_one_watcher_of_the_fence(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    app = create_app(deployment)
    gateway = app.state.gateway
    fences = FenceBoard(deployment.data_dir)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            _ca_id, ca_token = await _signup(client, "ca0", "CA")
            fences.raise_fence(Fence("na-anz", frozenset({"CA"}), 0))
            held = [
                asyncio.create_task(
                    client.patch(
                        "/v1/me",
                        json={"display_name": f"ca {i}"},
                        headers={"Authorization": f"Bearer {ca_token}"},
                    )
                )
                for i in range(20)
            ]
            await asyncio.sleep(0.2)
            assert not any(t.done() for t in held)
            assert len(gateway._watchers) == 1
            fences.release()
            answers = await asyncio.gather(*held)
            assert [r.status_code for r in answers] == [200] * 20
            await asyncio.sleep(0.05)
            assert gateway._watchers == set()  # the watcher ends with the fence

    try:
        asyncio.run(main())
    finally:
        deployment.close()
