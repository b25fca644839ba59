"""PostgreSQL's own tools (pg_dump, pg_restore) and the database moves a restore makes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql

from carveout.backup.models import BackupError
from carveout.storage.pgcluster import PgClusterError, find_bindir


def pg_tool(name: str) -> Path:
    """The client tool from the newest server install: it must not be older than the server."""
    try:
        path = find_bindir() / name
    except PgClusterError as exc:
        raise BackupError(f"{name} not found: {exc}") from None
    if not path.is_file():
        raise BackupError(f"{name} not found at {path}: install Debian's `postgresql` package")
    return path


def libpq_url(url: str) -> str:
    """A URL libpq tools accept (no SQLAlchemy driver suffix)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_name(url: str) -> str:
    name = sa.make_url(url).database
    if not name:
        raise BackupError(f"PostgreSQL URL names no database: {sa.make_url(url)!r}")
    return name


def with_database(url: str, name: str) -> str:
    return libpq_url(sa.make_url(url).set(database=name).render_as_string(hide_password=False))


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(with_database(url, "postgres"), autocommit=True)


def database_exists(url: str) -> bool:
    with _admin(url) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database_name(url),)
        ).fetchone()
    return found is not None


def create_database(url: str, name: str) -> str:
    with _admin(url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(url, name)


def drop_database(url: str, name: str) -> None:
    with _admin(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def rename_database(url: str, old: str, new: str) -> None:
    with _admin(url) as conn:
        # A rename needs the database idle; the operator asked for the replacement.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (old,),
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(old), sql.Identifier(new)
            )
        )


class PgRestore:
    """pg_restore reading a custom-format dump from a pipe, into the database at `url`, in one
    transaction: the dump is handed over as it is unpacked, so the unpacking overlaps the
    restore and the dump is never written to disk. `hashed`: the sha256 of what was written
    is kept (`backup verify` compares it with the manifest's)."""

    def __init__(self, url: str, *, hashed: bool = False) -> None:
        self.database = database_name(url)
        # A file, not a pipe: a full pipe would stall pg_restore. Closed by wait() or stop().
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        self._digest = hashlib.sha256() if hashed else None
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv of PostgreSQL's own tool
            [
                str(pg_tool("pg_restore")),
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",
                "-d",
                libpq_url(url),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._errors,
        )
        assert self._proc.stdin is not None
        self._stdin = self._proc.stdin

    @property
    def sha256(self) -> str:
        assert self._digest is not None
        return self._digest.hexdigest()

    def write(self, data: memoryview) -> None:
        if self._digest is not None:
            self._digest.update(data)
        fd = self._stdin.fileno()
        try:
            while data:  # os.write: no Python-side buffer, and the GIL is released meanwhile
                data = data[os.write(fd, data) :]
        except BrokenPipeError:
            self._proc.wait()
            raise self._failure() from None

    def close(self) -> None:
        self._stdin.close()

    def wait(self) -> None:
        """Once the whole dump was written: pg_restore's outcome."""
        if not self._stdin.closed:
            self._stdin.close()
        if self._proc.wait() != 0:
            raise self._failure()
        self._errors.close()

    def stop(self) -> None:
        """The unpacking failed: pg_restore is stopped, its transaction never commits."""
        with contextlib.suppress(OSError):
            self._stdin.close()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._errors.close()

    def _failure(self) -> BackupError:
        self._errors.seek(0)
        message = self._errors.read().decode(errors="replace").strip()
        self._errors.close()
        return BackupError(f"pg_restore into {self.database} failed: {message}")
