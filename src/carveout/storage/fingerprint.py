"""Content digests of a cell's tables: prove a store is exactly as it was, or equal to another."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from carveout.datamap import DATA_MAP, TABLES
from carveout.storage.blobs import BlobStore
from carveout.storage.port import Store

_CHUNK = 20_000


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
    """(rows, digest) of a table's rows in primary-key order, optionally filtered."""
    spec = DATA_MAP.table(table)
    tbl = TABLES[table]
    key = tbl.c[spec.primary_key]
    digest = hashlib.sha256()
    count = 0
    last: Any = None
    with store.connect() as conn:
        while True:
            stmt = sa.select(tbl).order_by(key).limit(_CHUNK)
            if where is not None:
                stmt = stmt.where(where)
            if last is not None:
                stmt = stmt.where(key > last)
            rows = conn.execute(stmt).all()
            for row in rows:
                digest.update(hashlib.sha256(canonical(row)).digest())
            count += len(rows)
            if len(rows) < _CHUNK:
                break
            last = rows[-1]._mapping[spec.primary_key]
    return count, digest.hexdigest()


def fingerprint(store: Store, blobs: BlobStore | None = None) -> Fingerprint:
    tables = {t.name: table_digest(store, t.name) for t in DATA_MAP.tables}
    files = tuple(blobs.list()) if blobs is not None else ()
    return Fingerprint(tables=tables, blobs=files)
