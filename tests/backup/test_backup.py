"""Backup, verify, restore and retention on every backend, against real stores and files."""

from __future__ import annotations

import hashlib
import shutil
import stat
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from backup_env import BACKENDS, Env, MakeEnv, add_users

from carveout.backup import list_backups, restore_backup, run_backup, verify_backup
from carveout.backup.models import PG_COPY, SQLITE_JSON
from carveout.backup.restore import compare, table_checks
from carveout.cells import POLICY_FILE, Deployment
from carveout.core import Conflict
from carveout.datamap import DATA_MAP, TABLES
from carveout.privacy import erase
from carveout.storage import fingerprint


@pytest.mark.parametrize("backend", BACKENDS)
def test_backup_verifies_and_restores_exactly(make_env: MakeEnv, backend: str) -> None:
    env = make_env(backend, users=20, blobs=3)
    before = env.fingerprint()
    result = run_backup(env.deployment, "global", chunk_size=16_384)
    m = result.manifest

    assert env.fingerprint() == before  # the serving cell is untouched
    # The manifest's digests are the serving cell's, by the method it names (SQLite: the
    # SQLite-side digest; PostgreSQL: the server's COPY text), and the row counts are the same.
    assert m.table_digest == (SQLITE_JSON if backend == "sqlite" else PG_COPY)
    assert m.tables == table_checks(m.table_digest, env.cell.store)
    assert {k: t.rows for k, t in m.tables.items()} == {k: n for k, (n, _) in before.tables.items()}
    assert m.blobs == before.blobs and len(m.chunks) > 3
    assert [p.name for p in env.site.iterdir()] == ["global"]
    assert [p.name for p in (env.site / "global").iterdir()] == [m.backup_id]
    # Sealed: no row value appears in the stored chunks.
    email = next(iter(_emails(env)))
    stored = b"".join(p.read_bytes() for p in (env.site / "global" / m.backup_id).rglob("*.*"))
    assert email.encode() not in stored

    check = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert check.ok, check.problems
    [listed] = list_backups(env.data_dir, env.deployment.policy)
    assert listed.verification is not None and listed.verification.ok
    assert (listed.site, listed.rows) == ("sg", sum(t.rows for t in m.tables.values()))

    add_users(env.cell, 3)  # changes after the backup are rolled back by --replace
    env.deployment.close()  # a restore replaces the cell's files: stop serving it first
    restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id, replace=True)
    assert env.fingerprint() == before
    # Chunks of 16 KiB: items span chunks and chunks span items, each piece written at its
    # offset by one of two threads. Every blob file is byte for byte the backed-up one.
    blobs = [i for i in m.items if i.name.startswith("blobs/")]
    assert blobs and any(i.offset % 16_384 for i in blobs)
    for item in blobs:
        restored = env.cell.blobs.local_path(item.sha256).read_bytes()
        assert hashlib.sha256(restored).hexdigest() == item.sha256 and len(restored) == item.size


def _emails(env: Env) -> list[str]:
    """Plaintext emails (opened from their sealed form)."""
    with env.cell.store.connect() as conn:
        rows = conn.execute(sa.select(TABLES["users"])).all()
    return [u["email"] for u in env.cell.vault.open_rows(DATA_MAP.table("users"), rows)]


def test_keys_live_apart_from_data_with_owner_only_permissions(env: Env) -> None:
    run_backup(env.deployment, "global")
    keys = env.data_dir / "keys" / "global"
    files = sorted(p.name for p in keys.iterdir())
    assert files == [
        "backup-signing.key",
        "backup.key",
        "lookup.key",
        "user-kek.key",
        "user-keys.db",
    ]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((keys / f).stat().st_mode) == 0o600 for f in files)
    assert not list(env.cell.root.rglob("*.key"))


def test_restore_into_a_new_data_dir_from_policy_and_keys(env: Env, tmp_path: Path) -> None:
    """Disaster recovery: the data directory is lost; the policy, keys and site survive."""
    before = env.fingerprint()
    m = run_backup(env.deployment, "global").manifest
    fresh = tmp_path / "rebuilt"
    fresh.mkdir()
    shutil.copy(env.data_dir / POLICY_FILE, fresh / POLICY_FILE)
    shutil.copytree(env.data_dir / "keys", fresh / "keys")
    shutil.copytree(env.site, fresh / "sites" / "sg")

    restore_backup(fresh, env.deployment.policy, "global", m.backup_id)

    rebuilt = Deployment.open(fresh)
    try:
        cell = rebuilt.cell("global")
        assert fingerprint(cell.store, cell.blobs) == before
        assert list((fresh / "cells").iterdir()) == [fresh / "cells" / "global"]
    finally:
        rebuilt.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_restore_refuses_a_cell_that_exists(make_env: MakeEnv, backend: str) -> None:
    env = make_env(backend)
    m = run_backup(env.deployment, "global").manifest
    add_users(env.cell, 2)
    before = env.fingerprint()
    with pytest.raises(Conflict, match=r"already exists.*--replace"):
        restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert env.fingerprint() == before


def test_snapshot_is_consistent_while_the_cell_takes_writes(make_env: MakeEnv) -> None:
    """Each writer transaction adds a user and a session: a consistent snapshot holds both or
    neither, whatever instant it was taken at."""
    env = make_env("sqlite", users=200, blobs=1)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            add_users(env.cell, 1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        results = [run_backup(env.deployment, "global", keep=3) for _ in range(3)]
    finally:
        stop.set()
        writer.join()
    for r in results:
        tables = r.manifest.tables
        assert tables["users"].rows == tables["sessions"].rows >= 200
        assert verify_backup(env.data_dir, env.deployment.policy, "global", r.manifest.backup_id).ok
    assert results[-1].manifest.tables["users"].rows > 200  # the writer did run meanwhile


def test_retention_keeps_n_generations(env: Env) -> None:
    ids = [run_backup(env.deployment, "global", keep=2).manifest.backup_id for _ in range(3)]
    assert [b.backup_id for b in list_backups(env.data_dir, env.deployment.policy)] == ids[1:]
    assert sorted(p.name for p in (env.site / "global").iterdir()) == ids[1:]


def test_compare_names_the_table_that_differs(env: Env) -> None:
    m = run_backup(env.deployment, "global").manifest
    add_users(env.cell, 1)
    problems = compare(m, env.cell.store, env.cell.blobs)
    assert [p.split(":")[0] for p in problems] == ["table sessions", "table users"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_users_erased_after_a_backup_stay_erased_after_its_restore(
    make_env: MakeEnv, backend: str
) -> None:
    """Take a backup, erase a user, restore the backup: nothing of that user is readable, and
    the erasure is re-applied from the key store's tombstone."""
    env = make_env(backend, users=4, blobs=2)
    owners = _user_ids(env)
    gone, kept = owners[0], owners[1]  # `gone` owns a blob file (add_blob round-robin)
    backup_id = run_backup(env.deployment, "global").manifest.backup_id
    receipt = erase(env.cell, gone, requested_by="privacy-officer", purpose="Art. 17 request")
    assert {line.store: line.records for line in receipt.lines}["key store"] == 1

    env.deployment.close()
    restore_backup(env.data_dir, env.deployment.policy, "global", backup_id, replace=True)
    cell = env.cell
    users = DATA_MAP.table("users")
    with cell.store.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(TABLES["users"]))}
        sessions = conn.execute(
            sa.select(sa.func.count()).where(TABLES["sessions"].c.user_id == gone)
        ).scalar_one()
    assert rows[gone].status == "erased" and sessions == 0
    opened = {u["id"]: u for u in cell.vault.open_rows(users, rows.values())}
    assert opened[gone]["email"] is None and opened[gone]["handle"] is None
    assert opened[kept]["email"] is not None  # everyone else restored and readable
    assert rows[kept].status == "active"


def _user_ids(env: Env) -> list[str]:
    with env.cell.store.connect() as conn:
        blobs = TABLES["blobs"]
        owners = list(conn.execute(sa.select(blobs.c.owner_id).order_by(blobs.c.id)).scalars())
        users = TABLES["users"]
        others = conn.execute(sa.select(users.c.id).where(users.c.id.not_in(owners))).scalars()
        return owners + list(others)
