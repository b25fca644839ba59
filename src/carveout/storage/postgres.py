"""The production store: one PostgreSQL database per cell, through psycopg 3."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import sqlalchemy as sa
from psycopg import sql

from carveout.datamap import TABLES
from carveout.storage.engine import SqlStore
from carveout.storage.port import Row


def _psycopg_dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_database(url: str) -> None:
    """Create the cell's database if the server does not have it yet."""
    target = sa.make_url(url)
    name = target.database
    if not name:
        raise ValueError(f"PostgreSQL URL names no database: {url}")
    admin = _psycopg_dsn(target.set(database="postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class PostgresStore(SqlStore):
    def __init__(self, url: str, *, create: bool = True) -> None:
        parsed = sa.make_url(url).set(drivername="postgresql+psycopg")
        if create:
            ensure_database(parsed.render_as_string(hide_password=False))
        engine = sa.create_engine(parsed, pool_size=8, max_overflow=8, pool_pre_ping=True)
        super().__init__(engine, "postgresql")

    def bulk_insert(self, table: str, rows: Sequence[Row]) -> int:
        # COPY is PostgreSQL's fast path: an order of magnitude above executemany for loads.
        if not rows:
            return 0
        names = list(TABLES[table].c.keys())
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(n) for n in names)
        )
        raw = self.engine.raw_connection()
        try:
            dbapi = raw.driver_connection
            assert isinstance(dbapi, psycopg.Connection)
            with dbapi.cursor() as cur, cur.copy(stmt) as copy:
                for row in rows:
                    copy.write_row([row.get(n) for n in names])
            raw.commit()
        except psycopg.Error as exc:
            raw.rollback()
            # Same exception types as every other write path (IntegrityError for duplicates).
            raise sa.exc.DBAPIError.instance(
                stmt.as_string(dbapi), None, exc, psycopg.Error
            ) from exc
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
        return len(rows)


def drop_database(url: str) -> None:
    """Drop a cell's database (an aborted carve's target), closing its connections first."""
    target = sa.make_url(url)
    name = target.database
    if not name:
        raise ValueError(f"PostgreSQL URL names no database: {url}")
    admin = _psycopg_dsn(target.set(database="postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
