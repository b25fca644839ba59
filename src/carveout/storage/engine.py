"""What the SQLite and PostgreSQL stores share: migrations, introspection, keyset iteration."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from importlib.resources import files
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from carveout.datamap import TABLES
from carveout.storage.port import Row

# Alembic's own bookkeeping table; it is the schema version, not cell data.
TOOLING_TABLES = frozenset({"alembic_version"})
# The tables of the connection's schema and their live columns in order: what SQLAlchemy's
# inspector reports (get_table_names, then get_columns of each), in one query.
_PG_COLUMNS = (
    "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
    "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("carveout.storage") / "migrations"))
    return cfg


@functools.cache  # the migration scripts do not change while the process runs
def schema_head() -> str:
    """The newest migration: the schema version every migrated store reports."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade(conn: sa.Connection) -> None:
    """Every pending migration, inside the caller's transaction (all or nothing)."""
    cfg = _alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


class SqlStore:
    """Base of SQLAlchemy-backed stores; subclasses build the engine, may speed up bulk loads."""

    def __init__(self, engine: sa.Engine, backend: str) -> None:
        self.engine = engine
        self._backend = backend

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dsn(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def migrate(self) -> str:
        # A database already at the newest version (e.g. copied from the migrated template,
        # postgres.create_migrated_database) needs no run: alembic's start-up alone costs
        # 40-80 ms, where reading the version is one query.
        current = self.schema_version()
        if current == schema_head():
            return current
        with self.engine.begin() as conn:
            upgrade(conn)
        version = self.schema_version()
        assert version is not None
        return version

    def schema_version(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def begin(self) -> AbstractContextManager[sa.Connection]:
        return self.engine.begin()

    def connect(self) -> AbstractContextManager[sa.Connection]:
        return self.engine.connect()

    def read(self) -> AbstractContextManager[sa.Connection]:
        # SQLite's driver opens no transaction for a SELECT: a plain connection already is one.
        return self.engine.connect()

    def bulk_insert(self, table: str, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(TABLES[table].insert(), [dict(r) for r in rows])
        return len(rows)

    def columns(self) -> dict[str, list[str]]:
        if self.backend == "postgresql":
            # One catalogue query: reflecting table by table cost 35-60 ms a call, and the
            # carve checks its source's schema before every phase (the copy running meanwhile).
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql(_PG_COLUMNS).all()
            found: dict[str, list[str]] = {}
            for table, column in rows:
                if table not in TOOLING_TABLES:
                    found.setdefault(str(table), []).append(str(column))
            return found
        inspector = sa.inspect(self.engine)
        return {
            name: [c["name"] for c in inspector.get_columns(name)]
            for name in inspector.get_table_names()
            if name not in TOOLING_TABLES
        }

    def iter_rows(
        self, table: str, *, order_by: str, chunk_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        tbl = TABLES[table]
        key = tbl.c[order_by]
        last: Any = None
        while True:
            stmt = sa.select(tbl).order_by(key).limit(chunk_size)
            if last is not None:
                stmt = stmt.where(key > last)
            with self.engine.connect() as conn:
                chunk = [dict(r._mapping) for r in conn.execute(stmt)]
            if not chunk:
                return
            yield chunk
            last = chunk[-1][order_by]

    def analyze(self) -> None:
        # Without statistics SQLite picks the videos(status) index for the feed and sorts the
        # whole catalogue; with them it walks the popularity index and stops after one page.
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

    def dispose(self) -> None:
        self.engine.dispose()
