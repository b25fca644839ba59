"""PostgreSQL's own tools (pg_dump, pg_restore) and the database moves a restore makes."""

from __future__ import annotations

import subprocess
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


def pg_restore(dump: Path, url: str) -> None:
    proc = subprocess.run(  # noqa: S603 - fixed argv of PostgreSQL's own tool
        [
            str(pg_tool("pg_restore")),
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            "-d",
            libpq_url(url),
            str(dump),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BackupError(f"pg_restore into {database_name(url)} failed: {proc.stderr.strip()}")
