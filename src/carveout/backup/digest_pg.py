"""Per-table digests of a PostgreSQL backup: sha256 of the server's COPY text of the rows.

`ROW_REPR` (storage.fingerprint) turns every row into Python objects to hash their repr:
on the KuaiRec cell (225k rows) about 0.8 s of a 1.6 s restore and the longer half of the
backup. Here the server writes the rows as `COPY ... TO STDOUT` text, in C, and Python only
feeds what arrives to sha256: 0.24-0.30 s for the 192k-row events table (CPU 0.17-0.19,
most of it psycopg handing over one row at a time), against about 0.7 s.

`PG_COPY`, the definition (the manifest names it; `verify` and `restore` recompute it):
- the data map's columns in table order, rows in primary-key order by byte value
  (`COLLATE "C"` on a text key, not the database's collation: a backup restored on a server
  with another default locale sorts the same);
- PostgreSQL's COPY text format: one line per row, columns separated by tabs, NULL as `\\N`,
  backslash, tab, newline and carriage return in a text escaped, so a line gives back its
  values and no two row sequences share one text (the row count is compared besides);
- written with `extra_float_digits = 1` (PostgreSQL 12+: the shortest text that reads back
  exactly) and `client_encoding = UTF8`, set for the transaction only, so a session or
  server default cannot change them;
- the digest is sha256 of the whole text; the count is the number of lines.
The text depends on how PostgreSQL prints int, bigint, boolean, double and text values (the
mapped column types): a server that printed them otherwise would show a mismatch, never a
false match."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
import sqlalchemy as sa

from carveout.backup.models import PG_COPY, BackupError, TableCheck
from carveout.datamap import DATA_MAP, TABLES


def pg_checks(conn: sa.Connection) -> dict[str, TableCheck]:
    """`PG_COPY` row count and digest of every mapped table, read in `conn`'s open
    transaction (a backup's exported snapshot, or a restored database)."""
    # SET LOCAL: until this transaction ends (the backup's snapshot transaction holds others'
    # settings apart; a restore's is its own).
    conn.exec_driver_sql("SET LOCAL extra_float_digits = 1")
    conn.exec_driver_sql("SET LOCAL client_encoding = 'UTF8'")
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise BackupError(f"table digest {PG_COPY} needs psycopg's connection, not {driver!r}")
    cursor = driver.cursor()  # psycopg's own: its copy API
    try:
        return {t.name: _table_check(cursor, t.name) for t in DATA_MAP.tables}
    finally:
        cursor.close()


def _table_check(cursor: psycopg.Cursor[Any], table: str) -> TableCheck:
    digest = hashlib.sha256()
    rows = 0
    with cursor.copy(copy_statement(table)) as copy:
        for line in copy:  # libpq hands COPY data over one row at a time
            digest.update(line)
            rows += 1
    return TableCheck(rows, digest.hexdigest())


def copy_statement(table: str) -> str:
    tbl = TABLES[table]
    key_col = tbl.c[DATA_MAP.table(table).primary_key]
    key = _ident(key_col.name)
    if isinstance(key_col.type, sa.String):
        key += ' COLLATE "C"'
    columns = ", ".join(_ident(c.name) for c in tbl.c)
    return f"COPY (SELECT {columns} FROM {_ident(table)} ORDER BY {key}) TO STDOUT"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
