"""STEP 7 verify: per-chunk checksums of J's rows, source against target, and a leak scan.

Chunks are ranges of primary keys cut on the source (CHUNK_ROWS rows each); the target's rows in
the same range must hash the same. The last range is open-ended, so extra target rows show up.
Parts of guest copies (the content exchange's, on either side) are no part of the carve: they
are left out of both sides (the leak scan accounts for the target's)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout import exchange
from carveout.carve import keys, state
from carveout.carve.capture import carved_tables
from carveout.cells import Cell, Policy
from carveout.datamap import DATA_MAP, TABLES, Table
from carveout.storage import fingerprint
from carveout.storage.fingerprint import row_digest

CHUNK_ROWS = 5000


@dataclass
class VerifyReport:
    tables: dict[str, int] = field(default_factory=dict)  # rows checked per table
    chunks: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


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


def changed_since_cutover(target: Cell, table: str) -> set[str]:
    """Keys written on the target after routing switched (its own capture log): they no longer
    match the sealed source, by design, and are left out of the comparison. Read after the
    chunk's target rows, so a row written meanwhile is in the log too (same transaction)."""
    changes = TABLES["carve_changes"]
    with target.store.connect() as conn:
        stmt = sa.select(changes.c.row_pk).where(changes.c.table_name == table)
        return {r[0] for r in conn.execute(stmt)}


def _verify_table(
    source: Cell,
    target: Cell,
    table: Table,
    codes: tuple[str, ...],
    report: VerifyReport,
    on_chunk: Callable[[str, int], None],
) -> None:
    key = f"verify:{table.name}"
    with target.store.connect() as conn:
        saved = state.get(conn, key) or {"last": None, "rows": 0, "done": False}
    if saved["done"]:
        report.tables[table.name] = saved["rows"]
        return
    tbl = TABLES[table.name]
    pk = tbl.c[table.primary_key]
    last = saved["last"]
    rows_checked = saved["rows"]
    guest = exchange.guest_part(table.name)
    while True:
        stmt = sa.select(tbl).where(tbl.c.domicile.in_(codes)).order_by(pk).limit(CHUNK_ROWS)
        if guest is not None:
            stmt = stmt.where(~guest)
        if last is not None:
            stmt = stmt.where(pk > last)
        with source.store.connect() as conn:
            src = [dict(r._mapping) for r in conn.execute(stmt)]
        final = len(src) < CHUNK_ROWS
        tstmt = sa.select(tbl).order_by(pk)
        if guest is not None:
            tstmt = tstmt.where(~guest)
        if last is not None:
            tstmt = tstmt.where(pk > last)
        if not final:
            tstmt = tstmt.where(pk <= src[-1][table.primary_key])
        with target.store.connect() as conn:
            dst = [dict(r._mapping) for r in conn.execute(tstmt)]
        last_src = src[-1][table.primary_key] if src else last
        changed = changed_since_cutover(target, table.name)
        if changed:
            pk_name = table.primary_key
            src = [r for r in src if str(r[pk_name]) not in changed]
            dst = [r for r in dst if str(r[pk_name]) not in changed]
        report.chunks += 1
        if len(src) != len(dst) or _digest(src) != _digest(dst):
            report.mismatches.append(
                f"{table.name}: chunk after {last!r}: "
                f"source {len(src)} rows, target {len(dst)} rows"
            )
        rows_checked += len(src)
        last = last_src
        with target.store.begin() as conn:
            state.put(conn, key, {"last": last, "rows": rows_checked, "done": final})
        on_chunk(table.name, len(src))
        if final:
            report.tables[table.name] = rows_checked
            return


def verify(
    source: Cell,
    target: Cell,
    codes: tuple[str, ...],
    on_chunk: Callable[[str, int], None] = lambda _t, _n: None,
) -> VerifyReport:
    report = VerifyReport()
    for table in carved_tables():
        _verify_table(source, target, table, codes, report, on_chunk)
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
        for table in DATA_MAP.tables:
            tbl = TABLES[table.name]
            n = conn.execute(
                sa.select(sa.func.count()).select_from(tbl).where(~tbl.c.domicile.in_(codes))
            ).scalar_one()
            guests = exchange.foreign_guest_rows(conn, table.name, codes, origins)
            report.foreign_rows[table.name] = int(n) - guests
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
