"""The import's checks beside the load: each table's digest against the bundle's on a worker
thread as soon as the table is loaded, the secondary indexes dropped before the load and built
again after it, and the blob files present at the end."""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from carveout.carve.bundle_crypto import BundleError
from carveout.carve.bundle_format import TableHash, digest_kind, fetch_rows
from carveout.carve.capture import carved_tables
from carveout.carve.sync import insert_rows
from carveout.cells import Cell
from carveout.core import now_ms
from carveout.datamap import DATA_MAP, TABLES
from carveout.events import STATS_COLUMNS, Recount, recompute_all
from carveout.storage import row_counts

BUILDERS = 3  # the most indexes a carved table has


class Verifier:
    """The carve's check of every table against the bundle's digest, beside the load.

    The digest (the manifest's kind, bundle_format.TableHash) runs over the rows in primary-key
    order, and a table's chunks hold consecutive runs of its rows in that order: so on
    PostgreSQL each chunk, once committed, is read back and hashed on a worker thread (the next
    `rows` rows after the last key read) while the next chunks load, and a table is settled as
    soon as its last chunk is (reading the whole table after its last chunk left the biggest
    table's read-back, 0.2-0.7 s, after the load). A settled table holds no row beyond the last
    one read, so its rows are exactly those hashed. On SQLite each table is read whole once its
    last chunk has committed. A table's secondary indexes are built on another thread as soon as
    its last chunk has committed, and once every rows chunk is in, the counters are written (on
    PostgreSQL on a third, while the blob files and keys load). A mismatch found meanwhile stops
    the load at its next chunk."""

    def __init__(
        self, cell: Cell, manifest: dict[str, Any], start: int, recount: Recount | None = None
    ) -> None:
        self.cell = cell
        self.recount = recount
        self.tables: dict[str, list[Any]] = manifest["tables"]
        self.kind = digest_kind(manifest)
        rows = [c for c in manifest["chunks"] if c["kind"] == "rows"]
        self.last: dict[str, int] = {c["table"]: c["index"] for c in rows}
        self.last_rows = max(self.last.values(), default=0)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="import-verify")
        # PostgreSQL builds each index on its own connection, several at once (the biggest
        # table's, built after its last chunk, are most of the import's tail); SQLite has one
        # writer, so one thread.
        builders = BUILDERS if cell.store.backend == "postgresql" else 1
        self.builder = ThreadPoolExecutor(builders, thread_name_prefix="import-indexes")
        self.counters = ThreadPoolExecutor(1, thread_name_prefix="import-counters")
        self.futures: list[Future[None]] = []
        self.reads: dict[str, _TableRead] = {}
        # Chunk by chunk on PostgreSQL only: on SQLite the reads of each chunk beside its one
        # writer made the import slower (median 1.24 s against 0.95 s reading each table whole
        # once loaded, 6 runs each). And only when every chunk says how many rows it holds
        # (all formats do; a bundle that does not is read a whole table at a time).
        self.by_chunk = cell.store.backend == "postgresql" and all(
            isinstance(c.get("rows"), int) for c in rows
        )
        # The tables the bundle holds no row of: checked empty together, once loaded (one query
        # where reading back and settling each took two, ahead of the first chunk's read-back).
        self.empty = [n for n in self.tables if n not in self.last and self.tables[n][0] == 0]
        for name in self.tables:
            loaded = sum(c["rows"] for c in rows if c["table"] == name and c["index"] < start)
            if name in self.empty:
                continue
            if self.last.get(name, 0) < start:
                # Nothing left to load (empty, or loaded before an interruption): now. Only a
                # table with rows had its indexes dropped (by an interrupted run).
                self._settle(name)
                if name in self.last:
                    self._build(name)
            elif self.by_chunk:
                self.reads[name] = _TableRead(name, self.kind)
                if loaded:  # committed before an interruption: read back first
                    self._read(name, loaded)
        if self.last_rows < start:
            self._count()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        for pool in (self.pool, self.builder, self.counters):
            pool.shutdown(wait=True, cancel_futures=True)

    def _build(self, table: str) -> None:
        for index in _secondary_indexes(table):
            self.futures.append(self.builder.submit(_build_index, self.cell, index))

    def _read(self, name: str, rows: int) -> None:
        self.futures.append(self.pool.submit(self.reads[name].read, self.cell, rows))

    def _settle(self, name: str) -> None:
        count, digest = self.tables[name]
        read = self.reads.pop(name, None)
        if read is None:  # the whole table at once
            read = _TableRead(name, self.kind)
            self.futures.append(self.pool.submit(read.read, self.cell, None))
        self.futures.append(self.pool.submit(read.settle, self.cell, count, digest))

    def loaded(self, index: int, table: str, rows: int) -> None:
        if self.by_chunk and table in self.reads:
            self._read(table, rows)
        if self.last.get(table) == index:
            if table in self.tables:
                self._settle(table)
            self._build(table)
        if index == self.last_rows:
            self._count()
        self.check()

    def check(self) -> None:
        for future in self.futures:
            if future.done():
                future.result()  # raises a mismatch now

    def _count(self) -> None:
        # On SQLite the rebuild's writes queued behind the index builds' (one writer) and
        # slowed both: it runs after them there (finish), as before (median 0.85 s against
        # 0.96 s on its own thread, 6 runs each).
        if self.cell.store.backend == "postgresql":
            self.futures.append(self.counters.submit(_counters, self.cell, self.recount))

    def finish(self) -> None:
        for future in self.futures:
            future.result()
        _check_empty(self.cell, {n: self.tables[n][1] for n in self.empty}, self.kind)
        if self.cell.store.backend != "postgresql":
            _counters(self.cell, self.recount)


class _TableRead:
    """One table's read-back so far: the rows hashed (the manifest's kind of digest), the
    last key read (used by the verify thread only, one job after another)."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.tbl = TABLES[name]
        self.key = self.tbl.c[DATA_MAP.table(name).primary_key]
        self.key_at = list(self.tbl.c).index(self.key)
        self.digest = TableHash(kind)
        self.count = 0
        self.last: Any = None

    def read(self, cell: Cell, rows: int | None) -> None:
        """The next `rows` rows (None: all the rest)."""
        stmt = sa.select(self.tbl).order_by(self.key).limit(rows)
        if self.last is not None:
            stmt = stmt.where(self.key > self.last)
        with cell.store.connect() as conn:
            _names, found = fetch_rows(conn, stmt, self.tbl)
        self.digest.update(found)
        self.count += len(found)
        if found:
            self.last = found[-1][self.key_at]

    def settle(self, cell: Cell, count: int, digest: str) -> None:
        stmt = sa.select(sa.func.count()).select_from(self.tbl)
        if self.last is not None:
            stmt = stmt.where(self.key > self.last)
        with cell.store.connect() as conn:
            beyond = conn.execute(stmt).scalar_one()
        if (self.count + beyond, self.digest.hexdigest()) != (count, digest):
            raise BundleError(
                f"after import, table {self.name} has {self.count + beyond} rows that do not "
                f"match the bundle's {count}: the import is incomplete or the target was "
                "written meanwhile"
            )


def _check_empty(cell: Cell, digests: dict[str, str], kind: str) -> None:
    """The tables the bundle says hold no row (with the digests it gives them): their digests
    those of no rows, and none in the imported cell (one query for all of them)."""
    nothing = TableHash(kind).hexdigest()
    for name, digest in digests.items():
        if digest != nothing:
            raise BundleError(f"the bundle says table {name} is empty, but its digest is not")
    if not digests:
        return
    with cell.store.connect() as conn:
        found = [n for n, count in row_counts(conn, dict.fromkeys(digests)).items() if count]
    if found:
        raise BundleError(
            f"after import, table {found[0]} holds rows the bundle does not: the target was "
            "written meanwhile"
        )


def _counters(cell: Cell, recount: Recount | None) -> None:
    """The counters (video_stats), which the bundle does not carry: those counted from the rows
    as they were parsed when this run parsed them all, else rebuilt from the loaded rows by the
    database (a resumed import did not see the rows loaded before it)."""
    if recount is None:
        recompute_all(cell.store, now_ms())
        return
    with cell.store.begin() as conn:
        conn.execute(sa.delete(TABLES["video_stats"]))
        stats = DATA_MAP.table("video_stats")
        insert_rows(conn, stats, STATS_COLUMNS, recount.rows(now_ms()))


def _secondary_indexes(table: str | None = None) -> list[sa.Index]:
    """The carved tables' (or one table's) non-unique indexes, as the schema declares them
    (unique ones are constraints the load must meet, so they stay)."""
    return [
        index
        for spec in carved_tables()
        if table is None or spec.name == table
        for index in sorted(TABLES[spec.name].indexes, key=lambda i: str(i.name))
        if not index.unique
    ]


def drop_indexes(cell: Cell, tables: Collection[str]) -> None:
    """The secondary indexes of the tables about to be loaded, dropped: built once after
    their rows are in rather than row by row (as the carve's replication copy does)."""
    with cell.store.begin() as conn:
        for table in tables:
            for index in _secondary_indexes(table):
                conn.execute(sa.schema.DropIndex(index, if_exists=True))


def _build_index(cell: Cell, index: sa.Index) -> None:
    """An index dropped before the load, built again (left alone if there already, so a
    resumed import builds only what is missing), in a transaction of its own: on SQLite the
    other chunks' progress records commit in between (one writer at a time)."""
    with cell.store.begin() as conn:
        conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def verify_blobs(cell: Cell, manifest: dict[str, Any]) -> None:
    have = set(cell.blobs.list())
    missing = [
        c["sha256_plain"]
        for c in manifest["chunks"]
        if c["kind"] == "blob" and c["sha256_plain"] not in have
    ]
    if missing:
        raise BundleError(f"{len(missing)} blob files of the bundle are missing after import")
