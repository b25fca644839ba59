"""Per-table digests of a PostgreSQL backup: sha256 of the server's COPY text of the rows.

`ROW_REPR` (storage.fingerprint) turns every row into Python objects to hash their repr:
on the KuaiRec cell (225k rows) about 0.8 s of a 1.6 s restore and the longer half of the
backup. Here the server writes the rows as `COPY ... TO STDOUT` text, in C, and Python only
feeds what arrives to sha256: about 0.28 s for the 192k-row events table (our CPU 0.08; the
rest is the server sorting and writing), against about 0.7 s.

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
from concurrent.futures import ThreadPoolExecutor

import psycopg
import sqlalchemy as sa
from psycopg import pq

from carveout.backup.models import PG_COPY, BackupError, TableCheck
from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import relation_sizes


def pg_checks(conn: sa.Connection, tables: list[str] | None = None) -> dict[str, TableCheck]:
    """`PG_COPY` row count and digest of every mapped table (or of `tables`), read in
    `conn`'s open transaction (a backup's exported snapshot, or a restored database)."""
    names = [t.name for t in DATA_MAP.tables] if tables is None else tables
    # SET LOCAL: until this transaction ends (the backup's snapshot transaction holds others'
    # settings apart; a restore's is its own). work_mem: the key-order sort of the largest
    # table stays in memory (the KuaiRec events table: 137 ms against 180 ms spilled at 4 MB).
    conn.exec_driver_sql("SET LOCAL extra_float_digits = 1")
    conn.exec_driver_sql("SET LOCAL client_encoding = 'UTF8'")
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise BackupError(f"table digest {PG_COPY} needs psycopg's connection, not {driver!r}")
    bytewise = _bytewise_keys(conn)
    with driver.lock:
        return {name: _table_check(driver.pgconn, name, name in bytewise) for name in names}


def pg_engine_checks(engine: sa.Engine) -> dict[str, TableCheck]:
    """`pg_checks` of a database nothing else writes to (a restored one), on two connections:
    the largest table on one, the others on the second, so the server sorts and writes on
    two cores (a freshly restored KuaiRec cell, six runs each: median 0.23 s against 0.26)."""
    names = [t.name for t in DATA_MAP.tables]
    with engine.connect() as conn:
        sizes = relation_sizes(conn, names)
    largest = max(sizes, key=sizes.__getitem__) if sizes else names[0]

    def part(tables: list[str]) -> dict[str, TableCheck]:
        with engine.connect() as conn:
            return pg_checks(conn, tables)

    with ThreadPoolExecutor(1, thread_name_prefix="backup-digest") as pool:
        beside = pool.submit(part, [largest])
        found = part([n for n in names if n != largest])
        found.update(beside.result())
    return {name: found[name] for name in names}


# A key column whose own collation is C or POSIX, or the database's default when that is libc's
# C or POSIX, already sorts by byte value: `ORDER BY key` then walks its index instead of
# sorting the table under `COLLATE "C"` (the KuaiRec events table: 90 ms against 137-180 ms).
_BYTEWISE = """
SELECT c.relname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
JOIN pg_collation k ON k.oid = a.attcollation
CROSS JOIN (
    SELECT datcollate, coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') AS provider
    FROM pg_database d WHERE datname = current_database()
) db
WHERE (c.relname, a.attname) IN ({pairs})
  AND (k.collname IN ('C', 'POSIX')
       OR (k.collname = 'default' AND db.provider = 'c' AND db.datcollate IN ('C', 'POSIX')))
"""


def _bytewise_keys(conn: sa.Connection) -> set[str]:
    """The tables whose text key sorts by byte value without `COLLATE "C"`."""
    keys = {
        t.name: TABLES[t.name].c[t.primary_key]
        for t in DATA_MAP.tables
        if isinstance(TABLES[t.name].c[t.primary_key].type, sa.String)
    }
    params = {}
    pairs = []
    for i, (table, col) in enumerate(keys.items()):
        params[f"t{i}"], params[f"c{i}"] = table, col.name
        pairs.append(f"(:t{i}, :c{i})")
    query = sa.text(_BYTEWISE.format(pairs=", ".join(pairs)))
    return set(conn.execute(query, params).scalars())


def _table_check(pgconn: pq.abc.PGconn, table: str, bytewise: bool) -> TableCheck:
    # libpq's own calls, not psycopg's Copy object: that one runs a Python generator per row
    # (0.15 CPU-seconds for the 192k-row events table against 0.08 here).
    pgconn.send_query(copy_statement(table, bytewise=bytewise).encode())
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        raise _failed(pgconn, table, result)
    digest = hashlib.sha256()
    rows = 0
    while True:
        size, line = pgconn.get_copy_data(0)  # one row, blocking
        if size < 0:
            break
        digest.update(line)
        rows += 1
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COMMAND_OK:
        raise _failed(pgconn, table, result)
    while pgconn.get_result() is not None:  # libpq's end of the query
        pass
    return TableCheck(rows, digest.hexdigest())


def _failed(pgconn: pq.abc.PGconn, table: str, result: pq.abc.PGresult | None) -> BackupError:
    message = (result.error_message if result is not None else pgconn.error_message).decode(
        errors="replace"
    )
    while pgconn.get_result() is not None:
        pass
    return BackupError(f"table digest of {table} failed: {message.strip()}")


def copy_statement(table: str, *, bytewise: bool = False) -> str:
    """`bytewise`: the key already sorts by byte value (`_bytewise_keys`)."""
    tbl = TABLES[table]
    key_col = tbl.c[DATA_MAP.table(table).primary_key]
    key = _ident(key_col.name)
    if isinstance(key_col.type, sa.String) and not bytewise:
        key += ' COLLATE "C"'
    columns = ", ".join(_ident(c.name) for c in tbl.c)
    return f"COPY (SELECT {columns} FROM {_ident(table)} ORDER BY {key}) TO STDOUT"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
