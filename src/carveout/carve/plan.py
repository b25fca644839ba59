"""STEP 1 plan: from the data map, what moves, which references cross the border, how long."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from carveout.cells import Deployment
from carveout.core import Conflict, InvalidInput, parse_jurisdictions
from carveout.datamap import DATA_MAP, TABLES, Table, TableKind
from carveout.storage import Store

# Planning figures for the estimate, measured on the reference 2-core machine (SQLite to
# SQLite copy and verify of the KuaiRec load); the run reports what it really took.
COPY_ROWS_PER_S = 40_000
COPY_MB_PER_S = 200.0


@dataclass(frozen=True)
class TablePlan:
    name: str
    kind: str
    moving_rows: int
    moving_bytes: int
    staying_rows: int
    action: str


@dataclass(frozen=True)
class CrossRef:
    table: str
    column: str
    references: str
    direction: str  # "outbound": moving row -> staying row; "inbound": staying row -> moving row
    rows: int
    action: str


@dataclass(frozen=True)
class CarvePlan:
    jurisdictions: tuple[str, ...]
    source: str
    target: str
    tables: tuple[TablePlan, ...]
    blob_files: int
    blob_bytes: int
    cross_refs: tuple[CrossRef, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def moving_rows(self) -> int:
        return sum(t.moving_rows for t in self.tables if t.kind != TableKind.DERIVED.value)

    @property
    def moving_bytes(self) -> int:
        return sum(t.moving_bytes for t in self.tables) + self.blob_bytes

    @property
    def estimate_s(self) -> float:
        return self.moving_rows / COPY_ROWS_PER_S + self.moving_bytes / (COPY_MB_PER_S * 1e6)


def _action(table: Table) -> str:
    if table.kind is TableKind.DERIVED:
        return "recomputed on the target from its own data; removed from the source at purge"
    return "copied, change-captured, verified; removed from the source at purge"


def _bytes(conn: sa.Connection, tbl: sa.Table, where: sa.ColumnElement[bool]) -> int:
    size = sum(
        (sa.func.coalesce(sa.func.length(sa.cast(c, sa.Text)), 0) for c in tbl.c),
        sa.literal(0),
    )
    return int(
        conn.execute(sa.select(sa.func.coalesce(sa.func.sum(size), 0)).where(where)).scalar_one()
    )


def _count(conn: sa.Connection, tbl: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(tbl).where(where)).scalar_one())


def _cross_refs(
    conn: sa.Connection, codes: tuple[str, ...], source: str, target: str, exchange: bool
) -> list[CrossRef]:
    out: list[CrossRef] = []
    for table in DATA_MAP.tables:
        tbl = TABLES[table.name]
        for col in table.columns:
            if not col.references:
                continue
            ref_name, ref_col = col.references.split(".")
            ref = TABLES[ref_name].alias("ref")
            joined = tbl.join(ref, ref.c[ref_col] == tbl.c[col.name])
            for direction, row_moves in (("outbound", True), ("inbound", False)):
                moves = tbl.c.domicile.in_(codes)
                ref_moves = ref.c.domicile.in_(codes)
                cond = sa.and_(moves, ~ref_moves) if row_moves else sa.and_(~moves, ref_moves)
                rows = int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(joined).where(cond)
                    ).scalar_one()
                )
                if not rows:
                    continue
                if row_moves:
                    action = f"moves to {target}; kept as an opaque reference into {source}"
                else:
                    action = f"stays in {source}; kept as an opaque reference into {target}"
                if exchange and ref_name == "videos":
                    # Guest copies flow into the carved cell only: the source stays sealed
                    # against J, so it cannot hold copies of J's videos (docs/exchange.md).
                    action += (
                        f" (content exchange on: `carveout exchange sync --from {source} --to "
                        f"{target} --referenced` brings the video as guest content)"
                        if row_moves
                        else " (not shown as guest content: the source stays sealed against J)"
                    )
                out.append(CrossRef(table.name, col.name, col.references, direction, rows, action))
    return out


def validate(
    deployment: Deployment, jurisdictions: str | tuple[str, ...], target: str
) -> tuple[tuple[str, ...], str]:
    """The parsed jurisdictions and the one source cell serving them, or a clear refusal."""
    codes = parse_jurisdictions(jurisdictions)
    if not target or not target.replace("-", "").replace("_", "").isalnum() or not target.islower():
        raise InvalidInput(f"target cell name {target!r}: use lower-case letters, digits, - and _")
    if target in deployment.policy.names:
        raise Conflict(f"cell {target!r} already exists in the residency policy")
    if (deployment.data_dir / "cells" / target).exists():
        raise Conflict(f"a cell folder for {target!r} already exists: {deployment.data_dir}")
    sources = {deployment.policy.cell_for(code).name for code in codes}
    if len(sources) != 1:
        raise InvalidInput(
            f"jurisdictions {', '.join(codes)} are served by several cells ({sorted(sources)}): "
            "carve them one source cell at a time"
        )
    return codes, sources.pop()


def make_plan(
    deployment: Deployment, jurisdictions: str | tuple[str, ...], target: str
) -> CarvePlan:
    codes, source = validate(deployment, jurisdictions, target)
    cell = deployment.cell(source)
    store: Store = cell.store
    tables: list[TablePlan] = []
    with store.connect() as conn:
        for table in DATA_MAP.tables:
            tbl = TABLES[table.name]
            moving = tbl.c.domicile.in_(codes)
            tables.append(
                TablePlan(
                    name=table.name,
                    kind=table.kind.value,
                    moving_rows=_count(conn, tbl, moving),
                    moving_bytes=_bytes(conn, tbl, moving),
                    staying_rows=_count(conn, tbl, ~moving),
                    action=_action(table),
                )
            )
        blobs = TABLES["blobs"]
        shas = (
            sa.select(blobs.c.sha256, sa.func.max(blobs.c.size_bytes).label("size"))
            .where(blobs.c.domicile.in_(codes))
            .group_by(blobs.c.sha256)
            .subquery()
        )
        n_files, n_bytes = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(shas.c.size), 0))
        ).one()
        refs = _cross_refs(conn, codes, source, target, cell.spec.content_exchange)
    notes = (
        "model artefacts: none copied; the target's recommender is retrained from its own data",
        f"keys: {cell.vault.keys.count(codes):,} user data keys move with their users (re-wrapped "
        "under the target's own key-encryption key) and the lookup key is adopted; removed "
        "from the source at purge. Backup keys are created fresh for the target",
    )
    return CarvePlan(
        jurisdictions=codes,
        source=source,
        target=target,
        tables=tuple(tables),
        blob_files=int(n_files),
        blob_bytes=int(n_bytes),
        cross_refs=tuple(refs),
        notes=notes,
    )


def render_plan(plan: CarvePlan) -> str:
    """The plan as text: deterministic for the same data (no ids, no clock)."""
    lines = [
        f"STEP 1: plan — carve {', '.join(plan.jurisdictions)} from cell {plan.source!r} "
        f"into new cell {plan.target!r}",
        "",
        f"{'table':<20} {'kind':<10} {'moving rows':>12} {'moving bytes':>14} {'staying':>10}"
        "  action",
    ]
    for t in plan.tables:
        lines.append(
            f"{t.name:<20} {t.kind:<10} {t.moving_rows:>12,} {t.moving_bytes:>14,} "
            f"{t.staying_rows:>10,}  {t.action}"
        )
    lines += [
        "",
        f"blob files: {plan.blob_files:,} ({plan.blob_bytes:,} bytes), copied into the target's "
        "blob store and checked by sha256",
        "",
        "cross-border references:",
    ]
    if not plan.cross_refs:
        lines.append("  none")
    for ref in plan.cross_refs:
        lines.append(
            f"  {ref.table}.{ref.column} -> {ref.references} ({ref.direction}): "
            f"{ref.rows:,} rows; {ref.action}"
        )
    lines += ["", *(f"note: {n}" for n in plan.notes)]
    lines.append(
        f"estimate: {plan.moving_rows:,} rows and {plan.moving_bytes / 1e6:,.1f} MB to copy, "
        f"about {plan.estimate_s:,.0f} s at {COPY_ROWS_PER_S:,} rows/s, while the source serves"
    )
    return "\n".join(lines) + "\n"
