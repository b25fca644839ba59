"""`backup verify` and `backup restore`: unpack into a scratch or staging cell, check, swap in."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from carveout.backup import pgtools
from carveout.backup.catalog import Stored, open_manifest, stored_backup, write_verification
from carveout.backup.digest import sqlite_checks
from carveout.backup.digest_pg import pg_engine_checks
from carveout.backup.keys import CellKeys, load_keys
from carveout.backup.models import (
    BLOB_PREFIX,
    DATABASE_ITEM,
    PG_COPY,
    ROW_REPR,
    SQLITE_JSON,
    BackupError,
    Item,
    Manifest,
    TableCheck,
    Verification,
)
from carveout.backup.run import scratch_dir
from carveout.backup.sites import backup_site
from carveout.backup.target import cell_exists, is_sqlite
from carveout.backup.unpack import unpack
from carveout.cells import CellSpec, Policy
from carveout.cells.registry import cell_root, open_cell
from carveout.core import Conflict, now_ms
from carveout.privacy import reapply_tombstones
from carveout.storage import LocalBlobStore, PostgresStore, SqliteStore, Store, fingerprint

DB_FILE = "cell.db"


@dataclass(frozen=True)
class Located:
    spec: CellSpec
    stored: Stored
    manifest: Manifest
    cell_key: bytes


def find(data_dir: Path, policy: Policy, cell: str, backup_id: str) -> tuple[Stored, CellKeys]:
    """The backup at the cell's designated site (folder or bucket), and the cell's keys."""
    site = backup_site(data_dir, policy, cell)
    stored = stored_backup(site, cell, backup_id)
    return stored, load_keys(data_dir, cell)


def locate(data_dir: Path, policy: Policy, cell: str, backup_id: str) -> Located:
    """The backup at the cell's designated site, its signature checked with the cell's key."""
    spec = policy.cell(cell)
    stored, keys = find(data_dir, policy, cell, backup_id)
    manifest = open_manifest(stored, keys)
    backend = "sqlite" if is_sqlite(spec) else "postgresql"
    if manifest.backend != backend:
        raise BackupError(
            f"backup {backup_id} holds a {manifest.backend} database; cell {cell!r} is "
            f"configured for {backend}"
        )
    return Located(spec, stored, manifest, keys.backup_key)


def item_problems(paths: dict[Item, Path]) -> list[str]:
    """Each unpacked file read back against its sha256 in the manifest. The unpacking proves
    every chunk authentic and in its place; this proves the files are what the backup's writer
    read (a writer that sealed other bytes than it hashed, or a chunk sealed by someone else
    holding the cell's backup key). `backup verify` runs it; `restore` relies on the chunks."""
    problems = []
    for item, path in paths.items():
        with path.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        if digest != item.sha256:
            problems.append(
                f"{item.name}: unpacked sha256 {digest[:16]}… differs from the manifest's"
            )
    return problems


def _streamed_problems(streamed: dict[Item, str]) -> list[str]:
    return [
        f"{item.name}: unpacked sha256 {digest[:16]}… differs from the manifest's"
        for item, digest in streamed.items()
        if digest != item.sha256
    ]


def table_checks(method: str, store: Store) -> dict[str, TableCheck]:
    """Every table's row count and digest by `method`, the one a manifest names."""
    if method == ROW_REPR:
        return {name: TableCheck(*check) for name, check in fingerprint(store).tables.items()}
    if method == SQLITE_JSON:
        if not isinstance(store, SqliteStore):
            raise BackupError(f"table digest {method} is read from a SQLite file only")
        return sqlite_checks(store.path)
    if method == PG_COPY:
        if not isinstance(store, PostgresStore):
            raise BackupError(f"table digest {method} is read from a PostgreSQL database only")
        return pg_engine_checks(store.engine)
    raise BackupError(f"table digest {method!r} is unknown to this version of carveout")


def compare(manifest: Manifest, store: Store, blobs: LocalBlobStore) -> list[str]:
    """Per-table row counts and digests of the restored cell against the manifest's, computed
    by the method the manifest names."""
    found = table_checks(manifest.table_digest, store)
    problems = []
    for name in sorted(set(manifest.tables) | set(found)):
        want = manifest.tables.get(name)
        check = found.get(name)
        rows, digest = (check.rows, check.sha256) if check else (-1, "")
        if want is None or (want.rows, want.sha256) != (rows, digest):
            expected = f"{want.rows} rows, {want.sha256[:12]}…" if want else "absent"
            problems.append(
                f"table {name}: restored {rows} rows, {digest[:12]}…; backup {expected}"
            )
    return problems + _blob_problems(manifest, tuple(blobs.list()))


def _blob_problems(manifest: Manifest, found: tuple[str, ...]) -> list[str]:
    if found != manifest.blobs:
        return [f"blobs: restored {len(found)}, backup holds {len(manifest.blobs)}"]
    return []


def _restore_problems(found: Located, store: Store, blobs: LocalBlobStore) -> list[str]:
    """What a restore checks beyond the unpacking. A SQLite backup's database file has just
    been unpacked byte for byte (every chunk of it authenticated at its index, placed where
    the signed manifest says), and the manifest's table digests were read from that very file
    when the backup was taken, so reading every row again would prove nothing more (and cost
    several times the unpacking).
    A PostgreSQL restore is logical (pg_restore), so its tables are compared. `backup verify`
    compares every table of either kind."""
    if found.manifest.backend == "sqlite":
        return _blob_problems(found.manifest, tuple(blobs.list()))
    return compare(found.manifest, store, blobs)


def _to_wal(path: Path) -> None:
    # What storage.sqlite's connections do first; the same fsyncs (synchronous=FULL here).
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


@dataclass(frozen=True)
class _Restored:
    store: Store
    db_name: str  # the new PostgreSQL database, "" for SQLite
    files: dict[Item, Path]  # the items unpacked to files
    streamed: dict[Item, str]  # streamed into pg_restore: the sha256 of what went (`hashed`)


@contextmanager
def _restored(
    found: Located, dest: Path, db_prefix: str, *, hashed: bool = False, to_wal: bool = False
) -> Iterator[_Restored]:
    """Every item of the backup unpacked under `dest` and the database opened as a store.
    PostgreSQL: restored by pg_restore into a new database (dropped if anything fails), the
    dump handed to it through a pipe while the chunks are unpacked."""
    files: dict[Item, Path] = {}

    def destination(item: Item) -> Path:
        if item.name == DATABASE_ITEM:
            path = dest / DB_FILE
        else:
            sha = item.name.removeprefix(BLOB_PREFIX)
            if item.sha256 != sha:
                raise BackupError(
                    f"{item.name}: content sha256 {item.sha256} differs from its name"
                )
            path = dest / "blobs" / sha[:2] / sha[2:4] / sha
        files[item] = path
        return path

    m = found.manifest
    if m.backend == "sqlite":
        with ThreadPoolExecutor(1, thread_name_prefix="backup-wal") as side:
            # A restore switches the file to WAL mode as soon as it is complete, while the
            # blob chunks still unpack: the switch's fsync writes the database to disk, which
            # the cell's opening (which switches it otherwise) would wait for after the swap.
            # Not for verify: it reads the file back against its sha256.
            wal = dest / DB_FILE if to_wal else None
            switching = []

            def written(path: Path) -> None:
                if path == wal:
                    switching.append(side.submit(_to_wal, path))

            unpack(found.stored.read, m, found.cell_key, destination, written=written)
            for future in switching:
                future.result()
        (dest / "blobs").mkdir(exist_ok=True)
        sqlite = SqliteStore(dest / DB_FILE)
        try:
            yield _Restored(sqlite, "", files, {})
        finally:
            sqlite.dispose()
        return
    name = f"{pgtools.database_name(found.spec.storage)}_{db_prefix}_{secrets.token_hex(4)}"
    # CREATE DATABASE (0.2-0.4 s here: it copies the template) runs while the chunks not in
    # the dump are unpacked; pg_restore starts when the dump's first byte is ready to go.
    creator = ThreadPoolExecutor(1, thread_name_prefix="backup-createdb")
    creating = creator.submit(pgtools.create_database, found.spec.storage, name)
    creator.shutdown(wait=False)
    try:
        restoring = pgtools.PgRestore(creating.result, hashed=hashed)
        try:
            unpack(found.stored.read, m, found.cell_key, destination, (DATABASE_ITEM, restoring))
        except BaseException:
            restoring.stop()
            raise
        (dest / "blobs").mkdir(exist_ok=True)
        restoring.wait()
        streamed = {i: restoring.sha256 for i in m.items if hashed and i.name == DATABASE_ITEM}
        pg = PostgresStore(creating.result(), create=False)
        try:
            yield _Restored(pg, name, files, streamed)
        finally:
            pg.dispose()
    except BaseException:
        futures.wait([creating])  # created first, if it is being created, then dropped
        pgtools.drop_database(found.spec.storage, name)
        raise


def verify_backup(data_dir: Path, policy: Policy, cell: str, backup_id: str) -> Verification:
    """Restore into a scratch cell, compare with the manifest, record the result at the site."""
    stored, _keys = find(data_dir, policy, cell, backup_id)  # missing backup or key: raised
    scratch = scratch_dir(data_dir)
    problems: list[str] = []
    checks: dict[str, TableCheck] = {}
    try:
        found = locate(data_dir, policy, cell, backup_id)
        with _restored(found, scratch, "verify", hashed=True) as restored:
            # The files are read back on a second thread while the tables are compared (sha256
            # and the reads release the GIL; the SQLite digest too, inside sqlite3_step).
            with ThreadPoolExecutor(1, thread_name_prefix="backup-verify") as pool:
                reading = pool.submit(item_problems, restored.files)
                try:
                    problems = compare(
                        found.manifest, restored.store, LocalBlobStore(scratch / "blobs")
                    )
                finally:
                    if restored.db_name:
                        restored.store.dispose()
                        pgtools.drop_database(found.spec.storage, restored.db_name)
                problems = reading.result() + problems
            problems = _streamed_problems(restored.streamed) + problems
        checks = found.manifest.tables if not problems else {}
    except BackupError as exc:
        problems = [str(exc)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = Verification(backup_id, not problems, now_ms(), tuple(problems), checks)
    write_verification(stored, result)
    return result


def restore_backup(
    data_dir: Path, policy: Policy, cell: str, backup_id: str, *, replace: bool = False
) -> Manifest:
    """Bring a cell back from a backup. The cell appears whole or not at all: the backup is
    unpacked and checked in a staging area, then swapped in by renames."""
    spec = policy.cell(cell)
    if cell_exists(data_dir, spec) and not replace:
        raise Conflict(
            f"cell {cell!r} already exists; restoring would overwrite it: pass --replace to "
            "replace it with the backup (stop serving it first)"
        )
    found = locate(data_dir, policy, cell, backup_id)
    root = cell_root(data_dir, cell)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".restore-{cell}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        with _restored(found, staging, "restore", to_wal=True) as staged:
            problems = _restore_problems(found, staged.store, LocalBlobStore(staging / "blobs"))
            staged.store.dispose()
            if problems:  # the staging database is dropped on the way out
                raise BackupError(f"backup {backup_id} restored wrong: {'; '.join(problems)}")
            if staged.db_name:
                _swap_database(spec.storage, staged.db_name)
        replaced = _swap_folder(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # The replaced cell's files are removed (unlinks: kernel work, no GIL) while the restored
    # cell opens, and are gone before this returns.
    removing = None
    if replaced is not None:
        removing = threading.Thread(
            target=shutil.rmtree, args=(replaced, True), name="backup-replaced", daemon=True
        )
        removing.start()
    try:
        # Users erased after the backup was taken stay erased: the key store (never in a
        # backup) has their tombstones; their sealed fields were unreadable already, the rest
        # goes now.
        restored = open_cell(data_dir, spec)
        try:
            reapply_tombstones(restored)
        finally:
            restored.store.dispose()
    finally:
        if removing is not None:
            removing.join()
    return found.manifest


def _swap_database(url: str, restored: str) -> None:
    name = pgtools.database_name(url)
    old = f"{name}_replaced_{secrets.token_hex(4)}"
    had_old = pgtools.database_exists(url)
    if had_old:
        pgtools.rename_database(url, name, old)
    pgtools.rename_database(url, restored, name)
    if had_old:
        pgtools.drop_database(url, old)


def _swap_folder(staging: Path, root: Path) -> Path | None:
    """Put `staging` in `root`'s place; the replaced folder (to remove), if there was one."""
    old = root.parent / f".replaced-{root.name}-{secrets.token_hex(4)}"
    had_old = root.exists()
    if had_old:
        root.rename(old)
    staging.rename(root)
    return old if had_old else None
