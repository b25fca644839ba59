"""Bring target rows in line with the source's current rows of J: the one write path of a carve.

Copy and change-apply both call it. It deletes the target's copies of the given keys and
re-inserts whatever the source holds for them now (if the row still belongs to J), so running it
twice for the same keys gives the same result: progress can be lost, never doubled."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql as psql

from carveout.cells import Cell
from carveout.datamap import DATA_MAP, TABLES, Table


def read_rows(
    conn: sa.Connection, table: Table, keys: Sequence[Any], codes: tuple[str, ...]
) -> list[dict[str, Any]]:
    tbl = TABLES[table.name]
    pk = tbl.c[table.primary_key]
    out: list[dict[str, Any]] = []
    for i in range(0, len(keys), 500):  # keep IN lists within every backend's parameter limit
        part = list(keys[i : i + 500])
        stmt = sa.select(tbl).where(pk.in_(part), tbl.c.domicile.in_(codes))
        out += [dict(r._mapping) for r in conn.execute(stmt)]
    return out


def copy_blob_files(
    source: Cell, target: Cell, rows: Sequence[dict[str, Any]], table: Table
) -> int:
    """Copy (and re-hash) the files a chunk's rows name, before the rows commit."""
    copied = 0
    for col in table.blob_columns:
        for row in rows:
            sha = row[col.name]
            if target.blobs.exists(sha):
                continue
            with source.blobs.open(sha) as src:
                got, _size, _new = target.blobs.put_stream(src)
            if got != sha:
                raise RuntimeError(f"blob {sha} changed in transit (got {got})")
            copied += 1
    return copied


def write_rows(
    conn: sa.Connection, table: Table, keys: Sequence[Any], rows: Sequence[dict[str, Any]]
) -> None:
    """Replace the target's rows for `keys` with `rows` inside the caller's transaction."""
    tbl = TABLES[table.name]
    pk = tbl.c[table.primary_key]
    for i in range(0, len(keys), 500):
        conn.execute(sa.delete(tbl).where(pk.in_(list(keys[i : i + 500]))))
    if rows:
        conn.execute(sa.insert(tbl), list(rows))


def uses_replication(source: Cell, target: Cell) -> bool:
    """PostgreSQL to PostgreSQL carves stream changes by logical replication; others capture
    with triggers."""
    return source.store.backend == target.store.backend == "postgresql"


def copy_missing_blobs(source: Cell, target: Cell) -> int:
    """Files of the target's blob rows it does not hold yet (replication carries rows only)."""
    blobs = TABLES["blobs"]
    with target.store.connect() as conn:
        shas = sorted({r[0] for r in conn.execute(sa.select(blobs.c.sha256))})
    missing = [{"sha256": sha} for sha in shas if not target.blobs.exists(sha)]
    return copy_blob_files(source, target, missing, DATA_MAP.table("blobs"))


def insert_rows(
    conn: sa.Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows the target does not hold yet (each a sequence of values in `columns`' order)
    inside the caller's transaction, through the driver's bulk path: `COPY ... FROM STDIN` on
    PostgreSQL, the driver's own `executemany` on SQLite. No SQLAlchemy statement per row and
    no delete first: only for a target known not to hold these keys (a bundle import loads
    each chunk once, in the transaction that records it as loaded). `columns` must be columns
    of the table; a key that exists already fails the insert (unique constraint)."""
    tbl = TABLES[table.name]
    unknown = [c for c in columns if c not in tbl.c]
    if unknown:
        raise ValueError(f"{table.name} has no columns {unknown}")
    if not rows:
        return
    dbapi = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        assert isinstance(dbapi, psycopg.Connection)
        stmt = psql.SQL("COPY {} ({}) FROM STDIN").format(
            psql.Identifier(table.name), psql.SQL(", ").join(map(psql.Identifier, columns))
        )
        types = _pg_types(conn.dialect, tbl, columns)
        with dbapi.cursor() as cur, cur.copy(stmt) as copy:
            if types is not None:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        return
    assert isinstance(dbapi, sqlite3.Connection)
    quoted = ", ".join(_ident(c) for c in columns)
    marks = ", ".join("?" * len(columns))
    # The identifiers are the table's own columns (checked above).
    dbapi.executemany(f"INSERT INTO {_ident(table.name)} ({quoted}) VALUES ({marks})", rows)


def _pg_types(dialect: sa.Dialect, tbl: sa.Table, columns: Sequence[str]) -> list[str] | None:
    """The columns' PostgreSQL type names, for COPY to pick each column's dumper once rather
    than per value (a third less client time for the COPY); None if psycopg lacks one."""
    names = [tbl.c[c].type.compile(dialect=dialect).split("(")[0].lower() for c in columns]
    return names if all(psycopg.postgres.types.get(n) for n in names) else None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
