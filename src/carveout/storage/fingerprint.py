"""Content digests of a cell's tables: prove a store is exactly as it was, or equal to another."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from carveout.datamap import DATA_MAP, TABLES
from carveout.storage.blobs import BlobStore
from carveout.storage.port import Store

_CHUNK = 20_000
_sha256 = hashlib.sha256


def canonical(values: Iterable[Any]) -> bytes:
    # repr of the column values in table order: both backends return int, float, str or None
    # for every mapped column, and repr keeps floats exact, so equal rows give equal bytes.
    return repr(tuple(values)).encode()


def row_digest(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(row.values())).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    tables: dict[str, tuple[int, str]]  # table -> (row count, digest of all rows in key order)
    blobs: tuple[str, ...]

    def diff(self, other: Fingerprint) -> list[str]:
        out = [
            f"{name}: {self.tables.get(name)} != {other.tables.get(name)}"
            for name in sorted(set(self.tables) | set(other.tables))
            if self.tables.get(name) != other.tables.get(name)
        ]
        if self.blobs != other.blobs:
            out.append(f"blobs: {len(self.blobs)} files != {len(other.blobs)} files")
        return out


def table_digest(
    store: Store, table: str, where: sa.ColumnElement[bool] | None = None
) -> tuple[int, str]:
    """(rows, digest) of a table's rows in primary-key order, optionally filtered.

    The digest is sha256 over the sha256 of each row's `canonical` bytes, rows in key order:
    backup manifests and transfer bundles record it, so its definition never changes."""
    with store.connect() as conn:
        return connection_digest(conn, table, where)


def connection_digest(
    conn: sa.Connection,
    table: str,
    where: sa.ColumnElement[bool] | None = None,
    *,
    batch: int = _CHUNK,
) -> tuple[int, str]:
    """`table_digest` read through an open connection, inside whatever transaction it holds
    (a backup's snapshot)."""
    spec = DATA_MAP.table(table)
    tbl = TABLES[table]
    key = tbl.c[spec.primary_key]
    key_at = list(tbl.c).index(key)
    digest = hashlib.sha256()
    count = 0
    last: Any = None
    # Rows come straight from the driver's cursor: SQLAlchemy's Row objects cost more than the
    # hashing itself. The values are the ones SQLAlchemy would return (its result processors,
    # e.g. SQLite's 0/1 to bool, are applied), so the digest is the same either way.
    cursor = conn.connection.cursor()
    try:
        while True:
            stmt = sa.select(tbl).order_by(key).limit(batch)
            if where is not None:
                stmt = stmt.where(where)
            if last is not None:
                stmt = stmt.where(key > last)
            rows = _fetch(cursor, conn.dialect, stmt, tbl)
            digest.update(b"".join([_sha256(repr(row).encode()).digest() for row in rows]))
            count += len(rows)
            if len(rows) < batch:
                break
            last = rows[-1][key_at]
    finally:
        cursor.close()
    return count, digest.hexdigest()


def _fetch(cursor: Any, dialect: sa.Dialect, stmt: sa.Select[Any], tbl: sa.Table) -> list[Any]:
    """All rows of `stmt` as tuples of the values SQLAlchemy would return for them."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positional:
        assert compiled.positiontup is not None
        cursor.execute(compiled.string, tuple(params[name] for name in compiled.positiontup))
    else:
        cursor.execute(compiled.string, params)
    rows: list[Any] = cursor.fetchall()
    processors = _processors(dialect, tbl, cursor.description)
    if not any(processors):
        return rows
    return [
        tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row, strict=True))
        for row in rows
    ]


def _processors(
    dialect: sa.Dialect, tbl: sa.Table, description: Any
) -> list[Callable[[Any], Any] | None]:
    return [
        col.type.dialect_impl(dialect).result_processor(dialect, desc[1])
        for col, desc in zip(tbl.c, description, strict=True)
    ]


def fingerprint(store: Store, blobs: BlobStore | None = None) -> Fingerprint:
    tables = {t.name: table_digest(store, t.name) for t in DATA_MAP.tables}
    files = tuple(blobs.list()) if blobs is not None else ()
    return Fingerprint(tables=tables, blobs=files)
