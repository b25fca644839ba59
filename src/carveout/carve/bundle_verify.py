"""The import's checks beside the load: each table's digest against the bundle's on a worker
thread as soon as the table is loaded, the secondary indexes dropped before the load and built
again after it, and the blob files present at the end."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from carveout.carve.bundle_crypto import BundleError
from carveout.carve.capture import carved_tables
from carveout.cells import Cell
from carveout.datamap import TABLES
from carveout.storage import table_digest


class Verifier:
    """The carve's check of every table against the bundle's digest, each table on a worker
    thread as soon as its last chunk has committed (no later chunk writes to it), while the
    next tables load; and the secondary indexes built on another as soon as the last rows
    chunk has committed, while the blob files and keys load. A mismatch found meanwhile stops
    the load at its next chunk."""

    def __init__(self, cell: Cell, manifest: dict[str, Any], start: int) -> None:
        self.cell = cell
        self.tables: dict[str, list[Any]] = manifest["tables"]
        self.last: dict[str, int] = {
            c["table"]: c["index"] for c in manifest["chunks"] if c["kind"] == "rows"
        }
        self.last_rows = max(self.last.values(), default=0)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="import-verify")
        self.builder = ThreadPoolExecutor(1, thread_name_prefix="import-indexes")
        self.futures: list[Future[None]] = []
        # Tables with nothing left to load (empty, or loaded before an interruption): now.
        for name in self.tables:
            if self.last.get(name, 0) < start:
                self._submit(name)
        if self.last_rows < start:
            self.futures.append(self.builder.submit(_build_indexes, cell))

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.builder.shutdown(wait=True, cancel_futures=True)

    def _submit(self, name: str) -> None:
        count, digest = self.tables[name]
        self.futures.append(self.pool.submit(_verify_table, self.cell, name, count, digest))

    def loaded(self, index: int, table: str) -> None:
        if self.last.get(table) == index and table in self.tables:
            self._submit(table)
        if index == self.last_rows:
            self.futures.append(self.builder.submit(_build_indexes, self.cell))
        self.check()

    def check(self) -> None:
        for future in self.futures:
            if future.done():
                future.result()  # raises a mismatch now

    def finish(self) -> None:
        for future in self.futures:
            future.result()


def _secondary_indexes() -> list[sa.Index]:
    """The carved tables' non-unique indexes, as the schema declares them (unique ones are
    constraints the load must meet, so they stay)."""
    return [
        index
        for table in carved_tables()
        for index in sorted(TABLES[table.name].indexes, key=lambda i: str(i.name))
        if not index.unique
    ]


def drop_indexes(cell: Cell) -> None:
    with cell.store.begin() as conn:
        for index in _secondary_indexes():
            conn.execute(sa.schema.DropIndex(index, if_exists=True))


def _build_indexes(cell: Cell) -> None:
    """The indexes dropped before the load, built again (those already there are left alone,
    so a resumed import builds only what is missing), one transaction each: on SQLite the blob
    chunks' progress records commit in between (one writer at a time)."""
    for index in _secondary_indexes():
        with cell.store.begin() as conn:
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _verify_table(cell: Cell, name: str, count: int, digest: str) -> None:
    got = table_digest(cell.store, name)
    if got != (count, digest):
        raise BundleError(
            f"after import, table {name} has {got[0]} rows that do not match the bundle's "
            f"{count}: the import is incomplete or the target was written meanwhile"
        )


def verify_blobs(cell: Cell, manifest: dict[str, Any]) -> None:
    have = set(cell.blobs.list())
    missing = [
        c["sha256_plain"]
        for c in manifest["chunks"]
        if c["kind"] == "blob" and c["sha256_plain"] not in have
    ]
    if missing:
        raise BundleError(f"{len(missing)} blob files of the bundle are missing after import")
