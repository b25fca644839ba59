"""Per-table digests of a SQLite backup, computed inside SQLite: one text per row, hashed in bulk.

A manifest names the method its table digests were made with (`Manifest.table_digest`), and
`verify` recomputes that same method: `ROW_REPR` (storage.fingerprint's definition: every row
through Python, both backends) for PostgreSQL and for manifests written before the name existed,
`SQLITE_JSON` for SQLite backups since. A SQLite backup is only ever checked against a SQLite
file (the restored copy), so its digest need not match PostgreSQL's, only itself.

`SQLITE_JSON`: for each row, in primary-key order, `json_array(...)` of its columns in table
order, built by SQLite's C code (measured: 0.6 of the CPU of `quote()` per column, half the
Python definition's), rows joined by newlines and fed to sha256 in large pieces. JSON keeps NULL,
integers and text apart (`null`, `0`, `""`) and escapes every byte of a text, NULs included
(`quote()` stops at a NUL). Two kinds of value need more than json_array gives:
- reals: it prints 15 significant digits, so in the columns the data map declares as floats a
  real is written as `[quote(value)]`, SQLite's exact (round-trip) literal inside a nested
  array, which no text, integer or NULL can produce;
- BLOBs: it refuses them. A table holding a BLOB anywhere is digested instead in the `quote()`
  form (each value typed: `X'..'` blobs, `T<hex>` texts, `quote()` the rest), its input tagged
  so that it can never equal a JSON-form digest. No mapped column is a BLOB: such a table is
  one that was altered, and it then differs from its manifest either way.
A real stored in a column declared integer or text is printed with 15 digits; the application
never writes one (integer columns are integer-affine, text columns text-affine).
The form depends on how SQLite prints these values: verify a backup with a SQLite that prints
them the same (a change shows as a mismatch, never as a match)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from carveout.backup.models import TableCheck
from carveout.datamap import DATA_MAP, TABLES

_BATCH = 20_000
_QUOTE_FORM = b"quote-form\n"  # begins the fallback form's input; a JSON row begins with "["


def sqlite_checks(path: Path, *, immutable: bool = False) -> dict[str, TableCheck]:
    """`SQLITE_JSON` row count and digest of every mapped table of the SQLite file at `path`,
    read-only (`immutable`: the file cannot change while open, e.g. a finished snapshot)."""
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    conn = sqlite3.connect(f"file:{path}?{flags}", uri=True)
    try:
        # One read transaction: every table from the same instant if the file is live.
        conn.execute("BEGIN")
        try:
            return {t.name: sqlite_table_check(conn, t.name) for t in DATA_MAP.tables}
        finally:
            conn.rollback()
    finally:
        conn.close()


def sqlite_schema_version(path: Path) -> str | None:
    """The alembic version of a finished snapshot (opened immutable)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no alembic table: an unversioned schema
        return None
    finally:
        conn.close()
    return str(row[0]) if row else None


def sqlite_table_check(conn: sqlite3.Connection, table: str) -> TableCheck:
    try:
        return _digest(conn, table, _json_row(table), b"")
    except sqlite3.OperationalError as exc:
        if "BLOB" not in str(exc):
            raise
    return _digest(conn, table, _quote_row(table), _QUOTE_FORM)


def _digest(conn: sqlite3.Connection, table: str, row: str, prefix: bytes) -> TableCheck:
    key = _ident(DATA_MAP.table(table).primary_key)
    cursor = conn.execute(f"SELECT {row} FROM {_ident(table)} ORDER BY {key}")
    digest = hashlib.sha256(prefix)
    count = 0
    while rows := cursor.fetchmany(_BATCH):
        count += len(rows)
        digest.update(("\n".join([r[0] for r in rows]) + "\n").encode())  # each row + "\n"
    return TableCheck(count, digest.hexdigest())


def _json_row(table: str) -> str:
    return f"json_array({', '.join(_json_value(col) for col in TABLES[table].c)})"


def _json_value(col: sa.Column[object]) -> str:
    name = _ident(col.name)
    if not isinstance(col.type, sa.Float):
        return name
    # A real as a nested array of its exact quote(): never equal to a text, which json_array
    # writes as a string (and quote() of a text would stop at a NUL).
    return f"(CASE typeof({name}) WHEN 'real' THEN json_array(quote({name})) ELSE {name} END)"


def _quote_row(table: str) -> str:
    return " || ',' || ".join(_quote_value(col) for col in TABLES[table].c)


def _quote_value(col: sa.Column[object]) -> str:
    # quote() stops at a NUL inside a text: texts as hex instead (T marks them, X'..' blobs).
    name = _ident(col.name)
    return f"(CASE typeof({name}) WHEN 'text' THEN 'T' || hex({name}) ELSE quote({name}) END)"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
