"""Access export (GDPR Art. 15/20, CCPA): every data-map column about the subject, in a zip.

One JSON file per table of the data map that names the subject (its columns, their data
categories and the rows), the recommender's derived state, the media they uploaded, and a
human-readable summary including who of the staff read their data and why. Sealed values are
opened with the subject's key; other people's ids and credentials are listed but withheld.
Archives live beside the cell's data, never inside it, so data backups do not carry them."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout.accounts import User
from carveout.cells import Cell
from carveout.core import NotFound, new_id, now_ms
from carveout.datamap import DATA_MAP, TABLES, Table

REQUESTS = TABLES["privacy_requests"]
OTHER_PERSON = "[another person: withheld]"
CREDENTIAL = "[credential: withheld]"
EXPORT_DAYS = 7  # archives are deleted by the retention job after this


def export_dir(cell: Cell) -> Path:
    # Beside cells/<cell>/, not inside: a data backup must not carry plaintext exports.
    return cell.root.parent.parent / "exports" / cell.name


def export_path(cell: Cell, name: str) -> Path:
    return export_dir(cell) / name


def subject_tables() -> list[Table]:
    return [t for t in DATA_MAP.tables if t.subject_columns]


def _withhold(table: Table, row: dict[str, Any], user_id: str) -> dict[str, Any]:
    out = {}
    for col in table.columns:
        value = row.get(col.name)
        if col.category == "user.authorization.credentials":
            value = CREDENTIAL if value else value
        elif col.category == "user.unique_id" and value not in (None, user_id):
            value = OTHER_PERSON
        out[col.name] = value
    return out


def collect(cell: Cell, user_id: str) -> dict[str, dict[str, Any]]:
    """Table name -> {description, columns (with categories), rows} for every subject table."""
    out: dict[str, dict[str, Any]] = {}
    with cell.store.connect() as conn:
        for table in subject_tables():
            tbl = TABLES[table.name]
            match = sa.or_(*(tbl.c[c] == user_id for c in table.subject_columns))
            rows = conn.execute(
                sa.select(tbl).where(match).order_by(tbl.c[table.primary_key])
            ).all()
            opened = cell.vault.open_rows(table, rows) if table.sealed_columns else rows
            out[table.name] = {
                "description": table.description,
                "columns": {
                    c.name: {"category": c.category, "description": c.description}
                    for c in table.columns
                },
                "rows": [
                    _withhold(table, dict(getattr(r, "_mapping", r)), user_id) for r in opened
                ],
            }
    return out


def build_archive(cell: Cell, user: User, derived: dict[str, Any], now: int | None = None) -> bytes:
    stamp = now or now_ms()
    data = collect(cell, user.id)
    buf = io.BytesIO()
    blobs = data["blobs"]["rows"]
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in data.items():
            zf.writestr(f"data/{name}.json", json.dumps(body, indent=1, ensure_ascii=False))
        zf.writestr("derived/recommender.json", json.dumps(derived, indent=1))
        for b in blobs:
            if cell.blobs.exists(b["sha256"]):
                with cell.blobs.open(b["sha256"]) as fh:
                    # Stored, not deflated: video is compressed already, and deflating it was
                    # most of a heavy user's export time (measured by bench privacy).
                    zf.writestr(f"media/{b['sha256']}", fh.read(), compress_type=zipfile.ZIP_STORED)
        zf.writestr("summary.txt", _summary(cell, user, data, derived, stamp))
    return buf.getvalue()


def _summary(
    cell: Cell,
    user: User,
    data: dict[str, dict[str, Any]],
    derived: dict[str, Any],
    stamp: int,
) -> str:
    lines = [
        f"Your data in carveout cell {cell.name!r}, exported at {stamp} (Unix ms).",
        f"Account {user.id} ({user.handle}), domicile {user.domicile}.",
        "",
        "What we hold, by table (machine-readable copies are in data/*.json):",
    ]
    for name, body in data.items():
        cats = sorted({c["category"] for c in body["columns"].values()})
        lines.append(f"  {name}: {len(body['rows'])} record(s); categories: {', '.join(cats)}")
    lines += [
        "",
        "What the recommender inferred about you is in derived/recommender.json "
        f"(model {derived.get('model')}).",
        "",
        "Staff who read your data, and why:",
    ]
    reads = data["staff_access_log"]["rows"]
    if not reads:
        lines.append("  nobody")
    for r in reads:
        role = str(r["role"]).replace("_", " ")
        article = "an" if role[:1] in tuple("aeiou") else "a"
        lines.append(f"  {r['created_at']}: {article} {role} read {r['action']}: {r['purpose']}")
    return "\n".join(lines) + "\n"


def start_export(cell: Cell, user: User) -> str:
    """Record an export request (status running); the caller runs `run_export` after."""
    request_id = new_id()
    now = now_ms()
    with cell.store.begin() as conn:
        conn.execute(
            sa.insert(REQUESTS).values(
                id=request_id,
                domicile=user.domicile,
                user_id=user.id,
                kind="export",
                status="running",
                requested_by=user.id,
                purpose="",
                progress=json.dumps({}),
                receipt=None,
                file=None,
                created_at=now,
                updated_at=now,
            )
        )
    return request_id


def run_export(
    cell: Cell, user: User, request_id: str, derive: Callable[[Cell, User], dict[str, Any]]
) -> Path:
    """Write the archive (atomically) and mark the request done."""
    try:
        archive = build_archive(cell, user, derive(cell, user))
        folder = export_dir(cell)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{request_id}.zip"
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(archive)
        tmp.chmod(0o600)
        tmp.replace(folder / name)
    except Exception:
        with cell.store.begin() as conn:
            conn.execute(
                sa.update(REQUESTS)
                .where(REQUESTS.c.id == request_id)
                .values(status="failed", updated_at=now_ms())
            )
        raise
    with cell.store.begin() as conn:
        conn.execute(
            sa.update(REQUESTS)
            .where(REQUESTS.c.id == request_id)
            .values(status="done", file=name, updated_at=now_ms())
        )
    return folder / name


def export_status(cell: Cell, user: User, request_id: str) -> tuple[str, Path | None]:
    """(status, archive path when done) of one of the user's own export requests."""
    with cell.store.connect() as conn:
        row = conn.execute(
            sa.select(REQUESTS.c.status, REQUESTS.c.file).where(
                REQUESTS.c.id == request_id,
                REQUESTS.c.user_id == user.id,  # someone else's request is not found
                REQUESTS.c.kind == "export",
            )
        ).first()
    if row is None:
        raise NotFound(f"no export {request_id}")
    path = export_path(cell, row.file) if row.file else None
    return row.status, path
