"""The PostgreSQL backup's table digest (backup/digest_pg.py): its definition, what it
catches, and older PostgreSQL manifests (storage.fingerprint's digest) still verifying."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest
import sqlalchemy as sa
from backup_env import Env, MakeEnv
from test_digest import _resign, _resign_as_before_the_method

from carveout.backup import restore_backup, run_backup, verify_backup
from carveout.backup.digest_pg import _bytewise_keys, pg_checks, pg_engine_checks
from carveout.backup.models import PG_COPY, BackupError, TableCheck
from carveout.backup.restore import compare
from carveout.datamap import TABLES

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_env(make_env: MakeEnv) -> Env:
    return make_env("postgresql", users=3, blobs=1)


def _checks(env: Env) -> dict[str, TableCheck]:
    with env.cell.store.connect() as conn:
        return pg_checks(conn)


def _insert(env: Env, table: str, rows: list[dict[str, object]]) -> None:
    with env.cell.store.begin() as conn:
        conn.execute(sa.insert(TABLES[table]), rows)


def _copy_text(value: object) -> str:
    """One value as COPY's text format writes it (written out here to pin the definition)."""
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(value)  # the same shortest exact text for the values used here
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _digest_of(table: str, rows: list[dict[str, object]]) -> str:
    lines = ["\t".join(_copy_text(r[c.name]) for c in TABLES[table].c) + "\n" for r in rows]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def test_the_digest_is_sha256_of_the_copy_text_in_byte_order_of_the_key(pg_env: Env) -> None:
    """Pins the definition: tabs between columns, `\\N` for NULL, escaped tabs, newlines and
    backslashes, doubles written exactly, keys in byte order (uppercase before lowercase)."""
    base = {"domicile": "CA", "user_id": "u", "video_id": "v", "status": "ok", "created_at": 7}
    comments = [
        {**base, "id": "b", "body": None},
        {**base, "id": "B", "body": "a\tb\\c\nd"},
        {**base, "id": "a", "body": ""},
        {**base, "id": "\\N", "body": "\\N"},
    ]
    _insert(pg_env, "comments", comments)
    counters = {c.name: i for i, c in enumerate(TABLES["video_stats"].c)}
    stats = [
        {
            **counters,
            "video_id": "s",
            "domicile": "CA",
            "watch_ratio_sum": 0.1 + 0.2,
            "popularity": 2.5,
        },
        {
            **counters,
            "video_id": "S",
            "domicile": "CA",
            "watch_ratio_sum": 1e-300,
            "popularity": 5e-324,
        },
    ]
    _insert(pg_env, "video_stats", stats)

    def in_key_order(rows: list[dict[str, object]], key: str) -> list[dict[str, object]]:
        return sorted(rows, key=lambda r: str(r[key]).encode())

    assert [r["id"] for r in in_key_order(comments, "id")] == ["B", "\\N", "a", "b"]
    checks = _checks(pg_env)
    assert checks["comments"] == TableCheck(4, _digest_of("comments", in_key_order(comments, "id")))
    want = _digest_of("video_stats", in_key_order(stats, "video_id"))
    assert checks["video_stats"] == TableCheck(2, want)
    assert checks["likes"] == TableCheck(0, hashlib.sha256().hexdigest())


def test_a_change_of_one_ulp_or_null_for_empty_changes_the_digest(pg_env: Env) -> None:
    stats = {c.name: 1 for c in TABLES["video_stats"].c}
    _insert(pg_env, "video_stats", [{**stats, "video_id": "v", "popularity": 0.1}])
    base = {"domicile": "CA", "user_id": "u", "video_id": "v", "status": "ok", "created_at": 7}
    _insert(pg_env, "comments", [{**base, "id": "c", "body": None}])
    seen = {tuple(_checks(pg_env).values())}
    for table, values in (
        ("video_stats", {"popularity": math.nextafter(0.1, 1.0)}),
        ("comments", {"body": ""}),
        ("comments", {"body": "\\N"}),
        ("comments", {"body": "\\\\N"}),
        ("comments", {"body": "x\ty"}),
        ("comments", {"body": "x\\ty"}),
    ):
        with pg_env.cell.store.begin() as conn:
            conn.execute(sa.update(TABLES[table]).values(**values))
        seen.add(tuple(_checks(pg_env).values()))
    assert len(seen) == 7


def test_restore_and_verify_catch_a_table_that_differs_from_the_manifest(pg_env: Env) -> None:
    env = pg_env
    m = run_backup(env.deployment, "global").manifest
    assert m.table_digest == PG_COPY
    assert m.tables == _checks(env)
    assert compare(m, env.cell.store, env.cell.blobs) == []
    sessions = TABLES["sessions"]
    with env.cell.store.begin() as conn:  # one session's expiry, one millisecond later
        first = conn.execute(sa.select(sa.func.min(sessions.c.id))).scalar_one()
        conn.execute(
            sa.update(sessions)
            .where(sessions.c.id == first)
            .values(expires_at=sessions.c.expires_at + 1)
        )
    assert [p.split(":")[0] for p in compare(m, env.cell.store, env.cell.blobs)] == [
        "table sessions"
    ]

    # A manifest whose digest for one table differs from what pg_restore loads (re-signed
    # with the cell's key: only the digest can tell): restore refuses it, naming the table,
    # and leaves the cell as it was; verify fails the same way.
    tables = dict(m.tables)
    tables["users"] = TableCheck(tables["users"].rows, "0" * 64)
    _resign(env, dataclasses.replace(m, tables=tables).to_bytes())
    before = env.fingerprint()
    env.deployment.close()
    with pytest.raises(BackupError, match="restored wrong: table users:"):
        restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id, replace=True)
    assert env.fingerprint() == before
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert [p.split(":")[0] for p in result.problems] == ["table users"]


def test_a_postgresql_manifest_with_the_older_digest_still_verifies(pg_env: Env) -> None:
    env = pg_env
    m = run_backup(env.deployment, "global").manifest
    _resign_as_before_the_method(env, m)  # manifests before the field: fingerprint's digest
    assert verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id).ok
    env.deployment.close()
    restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id, replace=True)


def test_a_table_the_digest_cannot_read_is_named(pg_env: Env) -> None:
    with pg_env.cell.store.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE comments RENAME COLUMN body TO text")
    with pytest.raises(BackupError, match=r'table digest of comments failed: .*"body"'):
        _checks(pg_env)


def test_the_key_order_is_bytewise_whatever_the_keys_collation(pg_env: Env) -> None:
    """A key whose collation sorts by byte value is read in its index order; any other is
    sorted under COLLATE "C": the digest is the same either way."""
    base = {"domicile": "CA", "user_id": "u", "video_id": "v", "status": "ok", "created_at": 7}
    _insert(pg_env, "comments", [{**base, "id": k, "body": k} for k in ("b", "B", "a", "_", "Ä")])
    before = _checks(pg_env)["comments"]
    with pg_env.cell.store.connect() as conn:
        assert "comments" in _bytewise_keys(conn)  # the test server's databases are C
    with pg_env.cell.store.begin() as conn:  # ICU's root locale: "a" < "B" < "b", not bytes
        conn.exec_driver_sql('ALTER TABLE comments ALTER COLUMN id TYPE text COLLATE "und-x-icu"')
    with pg_env.cell.store.connect() as conn:
        assert "comments" not in _bytewise_keys(conn)
        icu = conn.exec_driver_sql("SELECT id FROM comments ORDER BY id").scalars().all()
    assert icu != sorted(icu, key=str.encode)  # that collation really sorts otherwise
    assert _checks(pg_env)["comments"] == before


def test_two_connections_give_the_digests_of_one(pg_env: Env) -> None:
    _insert(pg_env, "video_stats", [{c.name: 1 for c in TABLES["video_stats"].c}])
    assert pg_engine_checks(pg_env.cell.store.engine) == _checks(pg_env)
