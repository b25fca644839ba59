"""STEP 7 verify: per-chunk checksums of J's rows, source against target, and a leak scan.

Chunks are ranges of primary keys cut on the source (CHUNK_ROWS rows each); the target's rows in
the same range must hash the same. The last range is open-ended, so extra target rows show up.
Parts of guest copies (the content exchange's, on either side) are no part of the carve: they
are left out of both sides (the leak scan accounts for the target's).

PostgreSQL to PostgreSQL, each side hashes its own chunk in the database (sha256 of the rows'
text forms joined in key order): both run the same schema on the same server version, so equal
rows give equal text, and no row crosses to Python. Any other pair hashes rows in Python
(storage.fingerprint's canonical form), since SQLite and PostgreSQL print values differently."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from carveout import exchange
from carveout.carve import keys, state
from carveout.carve.capture import carved_tables
from carveout.cells import Cell, Policy
from carveout.datamap import DATA_MAP, TABLES, Table
from carveout.storage import fingerprint, relation_sizes, row_counts
from carveout.storage.fingerprint import row_digest

CHUNK_ROWS = 5000
# PostgreSQL to PostgreSQL each side hashes its chunk in the database, where a larger chunk
# costs no memory here: fewer round trips and progress commits (a kill redoes one chunk).
DB_CHUNK_ROWS = 20_000
# ... and two tables are verified at once: most carved tables are small, and their chunks'
# time is round trips, which two threads overlap (the servers do the hashing).
TABLES_AT_ONCE = 2


@dataclass
class VerifyReport:
    tables: dict[str, int] = field(default_factory=dict)  # rows checked per table
    chunks: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def add(self, other: VerifyReport) -> None:
        self.tables.update(other.tables)
        self.chunks += other.chunks
        self.mismatches += other.mismatches


@dataclass
class LeakReport:
    foreign_rows: dict[str, int] = field(default_factory=dict)
    stray_blob_files: list[str] = field(default_factory=list)
    missing_blob_files: list[str] = field(default_factory=list)
    foreign_models: list[str] = field(default_factory=list)
    foreign_keys: list[str] = field(default_factory=list)  # jurisdictions owning user keys
    leftover_changes: int = 0
    # Rows outside J that are parts of guest copies the policy allows (content exchange): not
    # leaks, but counted so a report shows them.
    guest_rows: dict[str, int] = field(default_factory=dict)

    @property
    def leaks(self) -> int:
        return (
            sum(self.foreign_rows.values())
            + len(self.stray_blob_files)
            + len(self.foreign_models)
            + len(self.foreign_keys)
            + self.leftover_changes
        )


def _digest(rows: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(row_digest(row).encode())
    return h.hexdigest()


def changed_since_cutover(conn: sa.Connection, table: str) -> set[str]:
    """Keys written on the target after routing switched (its own capture log): they no longer
    match the sealed source, by design, and are left out of the comparison. The caller reads
    them after (or in the same snapshot as) the chunk's target rows, so a row written
    meanwhile is in the log too (same transaction)."""
    changes = TABLES["carve_changes"]
    stmt = sa.select(changes.c.row_pk).where(changes.c.table_name == table)
    return {str(r[0]) for r in conn.execute(stmt)}


def _verify_table(
    source: Cell,
    target: Cell,
    table: Table,
    codes: tuple[str, ...],
    report: VerifyReport,
    on_chunk: Callable[[str, int], None],
    pool: ThreadPoolExecutor | None,
) -> None:
    key = f"verify:{table.name}"
    with target.store.connect() as conn:
        saved = state.get(conn, key) or {"last": None, "rows": 0, "done": False}
    if saved["done"]:
        report.tables[table.name] = saved["rows"]
        return
    chunk = partial(_in_database, pool) if pool is not None else _in_python
    last = saved["last"]
    rows_checked = saved["rows"]
    while True:
        (n_src, d_src), (n_dst, d_dst), bound = chunk(source, target, table, codes, last)
        final = bound is None
        report.chunks += 1
        if n_src != n_dst or d_src != d_dst:
            report.mismatches.append(
                f"{table.name}: chunk after {last!r}: source {n_src} rows, target {n_dst} rows"
            )
        rows_checked += n_src
        if bound is not None:
            last = bound
        with target.store.begin() as conn:
            state.put(conn, key, {"last": last, "rows": rows_checked, "done": final})
        on_chunk(table.name, n_src)
        if final:
            report.tables[table.name] = rows_checked
            return


# One side's chunk: (rows, digest); a chunk: both sides and the key it ended at (None: the last,
# open-ended one).
Side = tuple[int, str]
Chunk = tuple[Side, Side, Any]


def _both_postgresql(source: Cell, target: Cell) -> bool:
    return source.store.backend == "postgresql" and target.store.backend == "postgresql"


def _ranges(table: Table, last: Any) -> tuple[sa.Table, sa.ColumnElement[Any], list[Any]]:
    """The table, its key and the filters both sides share: after `last`, no guest copy parts."""
    tbl = TABLES[table.name]
    pk = tbl.c[table.primary_key]
    common: list[Any] = []
    guest = exchange.guest_part(table.name)
    if guest is not None:
        common.append(~guest)
    if last is not None:
        common.append(pk > last)
    return tbl, pk, common


def _in_python(
    source: Cell, target: Cell, table: Table, codes: tuple[str, ...], last: Any
) -> Chunk:
    tbl, pk, common = _ranges(table, last)
    stmt = sa.select(tbl).where(tbl.c.domicile.in_(codes), *common).order_by(pk)
    with source.store.connect() as conn:
        src = [dict(r._mapping) for r in conn.execute(stmt.limit(CHUNK_ROWS))]
    final = len(src) < CHUNK_ROWS
    tstmt = sa.select(tbl).where(*common).order_by(pk)
    if not final:
        tstmt = tstmt.where(pk <= src[-1][table.primary_key])
    with target.store.connect() as conn:
        dst = [dict(r._mapping) for r in conn.execute(tstmt)]
    bound = None if final else src[-1][table.primary_key]
    with target.store.connect() as conn:
        changed = changed_since_cutover(conn, table.name)
    if changed:
        pk_name = table.primary_key
        src = [r for r in src if str(r[pk_name]) not in changed]
        dst = [r for r in dst if str(r[pk_name]) not in changed]
    return (len(src), _digest(src)), (len(dst), _digest(dst)), bound


def _in_database(
    pool: ThreadPoolExecutor,
    source: Cell,
    target: Cell,
    table: Table,
    codes: tuple[str, ...],
    last: Any,
) -> Chunk:
    tbl, pk, common = _ranges(table, last)
    moving = tbl.c.domicile.in_(codes)
    bound_stmt = (
        sa.select(pk).where(moving, *common).order_by(pk).offset(DB_CHUNK_ROWS - 1).limit(1)
    )
    with source.store.connect() as conn:
        bound = conn.execute(bound_stmt).scalar()
    in_range = [*common] if bound is None else [*common, pk <= bound]
    # The target takes J's writes again after the switch: its rows and its capture log are
    # read in one snapshot, so a row written meanwhile is either in both (and left out) or in
    # neither. The sealed source takes none of J's writes; it is read with the same keys left
    # out, on another thread while the target hashes its side: each side's work is its
    # server's, and the two run at once.
    with target.store.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        changed = sorted(changed_since_cutover(conn, table.name))
        if changed:
            in_range.append(sa.cast(pk, sa.Text).not_in(changed))
        src = pool.submit(_source_digest, source, tbl, pk, [moving, *in_range])
        dst = _side_digest(conn, tbl, pk, in_range)
    return src.result(), dst, bound


def _source_digest(
    source: Cell, tbl: sa.Table, pk: sa.ColumnElement[Any], where: list[Any]
) -> Side:
    with source.store.connect() as conn:
        return _side_digest(conn, tbl, pk, where)


def _side_digest(
    conn: sa.Connection, tbl: sa.Table, pk: sa.ColumnElement[Any], where: list[Any]
) -> Side:
    """Row count and sha256 of the rows' text forms, newline-joined in key order."""
    row_text = sa.cast(sa.literal_column(f'"{tbl.name}"'), sa.Text)
    joined = sa.func.string_agg(row_text, aggregate_order_by(sa.literal_column("E'\\n'"), pk))
    digest = sa.func.encode(sa.func.sha256(sa.func.convert_to(joined, "UTF8")), "hex")
    stmt = sa.select(sa.func.count(), digest).select_from(tbl).where(*where)
    n, hexdigest = conn.execute(stmt).one()
    return int(n), hexdigest or ""


def verify(
    source: Cell,
    target: Cell,
    codes: tuple[str, ...],
    on_chunk: Callable[[str, int], None] = lambda _t, _n: None,
) -> VerifyReport:
    report = VerifyReport()
    if not _both_postgresql(source, target):
        for table in carved_tables():
            _verify_table(source, target, table, codes, report, on_chunk, None)
        return report
    # Each table into its own report, added up in table order. A table's thread waits for its
    # source digests on `sources`, as large as the number of table threads, so never starved.
    # The largest table first: its chunks, one after another, are the phase's long pole (the
    # other thread checks all the small tables meanwhile; started in table order, `events` began
    # a quarter into the phase and ended it alone).
    parts = [(table, VerifyReport()) for table in carved_tables()]
    with source.store.connect() as conn:
        sizes = relation_sizes(conn, [table.name for table, _part in parts])
    with (
        ThreadPoolExecutor(TABLES_AT_ONCE, thread_name_prefix="verify-table") as tables,
        ThreadPoolExecutor(TABLES_AT_ONCE, thread_name_prefix="verify-source") as sources,
    ):
        jobs = [
            tables.submit(_verify_table, source, target, table, codes, part, on_chunk, sources)
            for table, part in sorted(parts, key=lambda p: -sizes.get(p[0].name, 0))
        ]
        for job in jobs:
            job.result()
    for _table, part in parts:
        report.add(part)
    return report


def model_lineage_leaks(root: Path, codes: tuple[str, ...]) -> list[str]:
    """Model artefacts whose manifest names a jurisdiction outside J (or no manifest at all)."""
    out: list[str] = []
    models = root / "models"
    if not models.is_dir():
        return out
    for path in sorted(models.rglob("*")):
        if not path.is_file() or path.name == "manifest.json":
            continue
        manifest = path.parent / "manifest.json"
        try:
            trained_on = set(json.loads(manifest.read_text())["jurisdictions"])
        except (OSError, ValueError, KeyError):
            out.append(f"{path}: no readable lineage manifest")
            continue
        if not trained_on <= set(codes):
            out.append(f"{path}: trained on {sorted(trained_on - set(codes))}")
    return out


def leak_scan(target: Cell, codes: tuple[str, ...], policy: Policy | None = None) -> LeakReport:
    """Every row, blob file and model artefact of the target must belong to J, except the
    parts of guest copies from cells the policy lets exchange with the target (only when the
    policy is given: without it, every foreign row is a leak)."""
    report = LeakReport()
    origins = exchange.partners(policy, target.name) if policy is not None else ()
    with target.store.connect() as conn:
        # One query for every table (with foreign_guest_rows' early return, a bundle import's
        # leak scan took 21 ms instead of 25).
        foreign = row_counts(
            conn, {t.name: ~TABLES[t.name].c.domicile.in_(codes) for t in DATA_MAP.tables}
        )
        for table in DATA_MAP.tables:
            n = foreign[table.name]
            guests = exchange.foreign_guest_rows(conn, table.name, codes, origins)
            report.foreign_rows[table.name] = n - guests
            if guests:
                report.guest_rows[table.name] = guests
        shas = {r[0] for r in conn.execute(sa.select(TABLES["blobs"].c.sha256))}
        changes = TABLES["carve_changes"]
        report.leftover_changes = int(
            conn.execute(sa.select(sa.func.count()).select_from(changes)).scalar_one()
        )
    files = set(target.blobs.list())
    report.stray_blob_files = sorted(files - shas)
    report.missing_blob_files = sorted(shas - files)
    report.foreign_models = model_lineage_leaks(target.root, codes)
    report.foreign_keys = keys.foreign_keys(target, codes)
    return report


def remove_stray_blobs(target: Cell) -> int:
    """Files whose rows were deleted while the carve ran; they belong to nobody now."""
    with target.store.connect() as conn:
        shas = {r[0] for r in conn.execute(sa.select(TABLES["blobs"].c.sha256))}
    stray = [sha for sha in target.blobs.list() if sha not in shas]
    for sha in stray:
        target.blobs.delete(sha)
    return len(stray)


def target_fingerprint(target: Cell) -> dict[str, tuple[int, str]]:
    return fingerprint(target.store).tables
