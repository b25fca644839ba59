"""The SQLite backup's table digest (backup/digest.py): what it catches, and old manifests."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backup_env import Env, add_users

from carveout.backup import load_keys, restore_backup, run_backup, verify_backup
from carveout.backup.digest import sqlite_checks
from carveout.backup.models import MANIFEST, ROW_REPR, SIGNATURE, SQLITE_JSON, Manifest, TableCheck
from carveout.backup.restore import compare
from carveout.cells.registry import cell_root
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.storage import LocalBlobStore, SqliteStore, fingerprint

Edit = Callable[[sqlite3.Connection], object]


def _copy(env: Env, dest: Path) -> Path:
    """A consistent copy of the cell's database, as a backup's snapshot is taken."""
    src = sqlite3.connect(env.cell.store.path)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    return dest


def _edited(path: Path, edit: Edit, name: str) -> Path:
    """A copy of `path` with `edit` applied to it."""
    out = path.with_name(f"{name}.db")
    out.write_bytes(path.read_bytes())
    conn = sqlite3.connect(out)
    try:
        edit(conn)
        conn.commit()
    finally:
        conn.close()
    return out


def _changed_tables(before: dict[str, TableCheck], after: dict[str, TableCheck]) -> list[str]:
    return sorted(t for t in before if before[t] != after[t])


def _different(value: object) -> object:
    """Another value of the same type, as close to `value` as the type allows."""
    if isinstance(value, float):
        return math.nextafter(value, math.inf)  # one unit in the last place
    if isinstance(value, int):
        return value + 1
    assert isinstance(value, str), value
    return value + "x"


@pytest.fixture
def snapshot(env: Env, tmp_path: Path) -> Path:
    """The cell's database with rows in every kind of column (text, integer, real, NULL)."""
    add_users(env.cell, 3)
    with sqlite3.connect(env.cell.store.path) as conn:
        vid = new_id()
        conn.execute(
            "INSERT INTO video_stats VALUES (?, 'CA', 3, 2, 1500, 0.1, 1, 0, 0, 0, ?, ?)",
            (vid, 0.1 + 0.2, now_ms()),
        )
        for table in ("likes", "events"):
            row = [new_id(), "CA", new_id(), vid] + (["watch", 1200] if table == "events" else [])
            marks = ", ".join("?" * (len(row) + 1))
            conn.execute(f"INSERT INTO {table} VALUES ({marks})", [*row, now_ms()])
    return _copy(env, tmp_path / "snapshot.db")


def test_a_changed_value_in_any_column_changes_that_table_only(snapshot: Path) -> None:
    before = sqlite_checks(snapshot)
    tried = 0
    for table in ("users", "sessions", "blobs", "video_stats", "events", "likes"):
        with sqlite3.connect(snapshot) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(f"SELECT rowid AS r, * FROM {table} LIMIT 1").fetchone()
        for col in TABLES[table].c:
            if row[col.name] is None:
                continue

            def edit(
                conn: sqlite3.Connection, t: str = table, c: str = col.name, old: object = row
            ) -> None:
                assert isinstance(old, sqlite3.Row)
                conn.execute(
                    f'UPDATE {t} SET "{c}" = ? WHERE rowid = ?', (_different(old[c]), old["r"])
                )

            after = sqlite_checks(_edited(snapshot, edit, f"{table}-{col.name}"))
            assert _changed_tables(before, after) == [table], (table, col.name)
            assert after[table].rows == before[table].rows
            tried += 1
    assert tried > 40  # every non-NULL column of six tables, reals to the last bit included


def test_missing_extra_and_moved_rows(snapshot: Path) -> None:
    before = sqlite_checks(snapshot)
    missing = sqlite_checks(_edited(snapshot, lambda c: c.execute(_DELETE_ONE_SESSION), "gone"))
    assert _changed_tables(before, missing) == ["sessions"]
    assert missing["sessions"].rows == before["sessions"].rows - 1

    def extra(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO sessions SELECT ?, domicile, user_id, ?, created_at, expires_at "
            "FROM sessions LIMIT 1",
            (new_id(), "f" * 64),
        )

    more = sqlite_checks(_edited(snapshot, extra, "extra"))
    assert _changed_tables(before, more) == ["sessions"]
    assert more["sessions"].rows == before["sessions"].rows + 1

    def moved(conn: sqlite3.Connection) -> None:
        # likes and follows have the same shape: the row's values, now in the other table.
        conn.execute("INSERT INTO follows SELECT * FROM likes")
        conn.execute("DELETE FROM likes")

    after = sqlite_checks(_edited(snapshot, moved, "moved"))
    assert _changed_tables(before, after) == ["follows", "likes"]
    assert (after["likes"].rows, after["follows"].rows) == (0, before["follows"].rows + 1)


_DELETE_ONE_SESSION = "DELETE FROM sessions WHERE rowid = (SELECT min(rowid) FROM sessions)"


@pytest.mark.parametrize(
    ("table", "column"),
    [("events", "watched_ms"), ("users", "handle_lookup"), ("video_stats", "popularity")],
)
def test_null_empty_zero_blob_and_text_all_differ(snapshot: Path, table: str, column: str) -> None:
    """SQLite stores any type in any column: each distinct stored value digests differently,
    in an integer, a text and a real column alike; texts that differ only after a NUL too."""
    values: list[object] = [None, "", 0, "0", 0.0, b"", b"0", "a\0b", "a\0c", b"a\0b", 0.5, "0.5"]
    digests: dict[tuple[str, object], str] = {}
    if not TABLES[table].c[column].nullable:  # SQLite enforces NOT NULL
        values.remove(None)
    for i, value in enumerate(values):

        def edit(conn: sqlite3.Connection, v: object = value) -> None:
            conn.execute(
                f'UPDATE {table} SET "{column}" = ? WHERE rowid = (SELECT min(rowid) FROM {table})',
                (v,),
            )

        path = _edited(snapshot, edit, f"value-{i}")
        with sqlite3.connect(path) as conn:  # what the column's affinity kept of the value
            stored = conn.execute(
                f'SELECT "{column}" FROM {table} ORDER BY rowid LIMIT 1'
            ).fetchone()[0]
        checks = sqlite_checks(path)
        assert checks == sqlite_checks(path)  # the same file, the same digest
        digest = digests.setdefault((type(stored).__name__, stored), checks[table].sha256)
        assert digest == checks[table].sha256  # equal stored values: equal digests
    # '', 0, the blobs and the NUL texts (and NULL) are kept as given whatever the affinity.
    assert len(digests) >= 7
    assert len(set(digests.values())) == len(digests), sorted(digests.items(), key=lambda kv: kv[1])


def test_verify_catches_a_tampered_table_with_the_sqlite_digest(env: Env) -> None:
    m = run_backup(env.deployment, "global").manifest
    assert m.table_digest == SQLITE_JSON
    assert verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id).ok
    env.deployment.close()
    restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id, replace=True)
    root = cell_root(env.data_dir, "global")
    store = SqliteStore(root / "cell.db")
    blobs = LocalBlobStore(root / "blobs")
    try:
        assert compare(m, store, blobs) == []
        with sqlite3.connect(store.path) as conn:  # one byte of one user's status
            conn.execute(
                "UPDATE users SET status = 'activf' WHERE rowid = (SELECT min(rowid) FROM users)"
            )
        problems = compare(m, store, blobs)
    finally:
        store.dispose()
    assert [p.split(":")[0] for p in problems] == ["table users"]

    # A manifest whose digest for one table differs from its rows (re-signed with the cell's
    # key: only the digest can tell): verify recomputes it from the restored file and fails.
    tables = dict(m.tables)
    tables["sessions"] = TableCheck(tables["sessions"].rows, "0" * 64)
    _resign(env, dataclasses.replace(m, tables=tables).to_bytes())
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert not result.ok
    assert [p.split(":")[0] for p in result.problems] == ["table sessions"]


def test_a_manifest_from_before_the_method_was_named_still_verifies(env: Env) -> None:
    """Old manifests have no `table_digest`: their digests are storage.fingerprint's, and
    verify recomputes those."""
    m = run_backup(env.deployment, "global").manifest
    old = _resign_as_before_the_method(env, m)
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert result.ok, result.problems

    # ... and a wrong digest in such a manifest is still caught, by the old method.
    old["tables"]["users"]["sha256"] = "0" * 64
    _resign(env, json.dumps(old, indent=1, sort_keys=True).encode())
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert [p.split(":")[0] for p in result.problems] == ["table users"]


def test_a_manifest_naming_an_unknown_method_fails_verify(env: Env) -> None:
    m = run_backup(env.deployment, "global").manifest
    _resign(env, dataclasses.replace(m, table_digest="sha512-of-tea-leaves").to_bytes())
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert not result.ok and "sha512-of-tea-leaves" in result.problems[0]


def _resign_as_before_the_method(env: Env, manifest: Manifest) -> dict[str, Any]:
    """The backup's manifest rewritten as one from before `table_digest` was named (the
    digests storage.fingerprint's) and signed again with the cell's key; returned as JSON."""
    old = json.loads(manifest.to_bytes())
    del old["table_digest"]
    old["tables"] = {
        name: {"rows": rows, "sha256": digest}
        for name, (rows, digest) in fingerprint(env.cell.store).tables.items()
    }
    data = json.dumps(old, indent=1, sort_keys=True).encode()
    assert Manifest.from_bytes(data, "old").table_digest == ROW_REPR
    _resign(env, data)
    return old


def _resign(env: Env, data: bytes) -> None:
    [folder] = (env.site / "global").iterdir()
    keys = load_keys(env.data_dir, "global")
    (folder / MANIFEST).write_bytes(data)
    (folder / SIGNATURE).write_text(keys.signing.sign(data).hex() + "\n")
