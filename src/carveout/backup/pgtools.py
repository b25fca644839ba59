"""PostgreSQL's own tools (pg_dump, pg_restore) and the database moves a restore makes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable
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

    def __init__(self, url: Callable[[], str], *, hashed: bool = False) -> None:
        """`url()`: the database's, called when the first byte is to be written (it may wait
        for the database to be created meanwhile)."""
        self._url = url
        self._digest = hashlib.sha256() if hashed else None
        self._proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a full pipe would stall pg_restore. Closed by wait() or stop().
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        self.database = ""

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            url = self._url()
            self.database = database_name(url)
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
        return self._proc

    @property
    def sha256(self) -> str:
        assert self._digest is not None
        return self._digest.hexdigest()

    def write(self, data: memoryview) -> None:
        proc = self._started()
        assert proc.stdin is not None
        if self._digest is not None:
            self._digest.update(data)
        fd = proc.stdin.fileno()
        try:
            while data:  # os.write: no Python-side buffer, and the GIL is released meanwhile
                data = data[os.write(fd, data) :]
        except BrokenPipeError:
            proc.wait()
            raise self._failure() from None

    def close(self) -> None:
        stdin = self._started().stdin
        assert stdin is not None
        stdin.close()

    def wait(self) -> None:
        """Once the whole dump was written: pg_restore's outcome."""
        proc = self._started()
        assert proc.stdin is not None
        if not proc.stdin.closed:
            proc.stdin.close()
        if proc.wait() != 0:
            raise self._failure()
        self._errors.close()

    def stop(self) -> None:
        """The unpacking failed: pg_restore is stopped, its transaction never commits."""
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._errors.close()

    def _failure(self) -> BackupError:
        self._errors.seek(0)
        message = self._errors.read().decode(errors="replace").strip()
        self._errors.close()
        return BackupError(f"pg_restore into {self.database} failed: {message}")
