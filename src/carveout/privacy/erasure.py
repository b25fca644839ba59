"""Erasure (GDPR Art. 17): a resumable job that reaches every store, with an exact receipt.

Driven by the data map: every table with a subject column is deleted from or anonymised as
the map says; tables the law makes us keep (receipts, the staff access log) are listed as
retained. The data key is destroyed first, so every sealed value of the subject — here, in
copies, in older backups — is unreadable from that instant; the rest removes what is left.
Each step commits its effect and its count in one transaction (or, for files, is idempotent
over a list fixed in such a transaction), so a crash at any instant resumes to the same receipt."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.core import Conflict, NotFound, new_id, now_ms
from carveout.datamap import DATA_MAP, TABLES, ErasureAction, Table
from carveout.events.stats import StatsDelta, apply_deltas, deltas
from carveout.privacy.exports import export_path
from carveout.privacy.models import ErasureGone, Receipt, ReceiptLine
from carveout.recommend.service import forget_user

USERS = TABLES["users"]
REQUESTS = TABLES["privacy_requests"]
EVENTS, VIDEOS, STATS = TABLES["events"], TABLES["videos"], TABLES["video_stats"]
RESTRICTIONS = TABLES["video_restrictions"]
SPECIAL = ("users", "events", "privacy_requests")
CHUNK = 500  # ids per IN list


def _table_steps() -> list[Table]:
    # Children before parents (reverse data-map order), so nothing points at a deleted row.
    return [
        t
        for t in reversed(DATA_MAP.tables)
        if t.subject_columns and t.name not in SPECIAL and t.erasure is not ErasureAction.RETAIN
    ]


STEPS: tuple[str, ...] = (
    "key",
    "events",
    *(t.name for t in _table_steps()),
    "blob_files",
    "exports",
    "recommender",
    "user",
)


@dataclass
class _Job:
    cell: Cell
    request_id: str
    user_id: str
    domicile: str
    progress: dict[str, Any]

    def done(self, step: str) -> bool:
        return step in self.progress["counts"]

    def save(self, conn: sa.Connection, step: str, count: int, **extra: Any) -> None:
        self.progress["counts"][step] = count
        self.progress.update(extra)
        conn.execute(
            sa.update(REQUESTS)
            .where(REQUESTS.c.id == self.request_id)
            .values(progress=json.dumps(self.progress), updated_at=now_ms())
        )


def start_erasure(cell: Cell, user_id: str, requested_by: str, purpose: str = "") -> str:
    """Claim the user for erasure (they can no longer log in or write) and record the request.
    Conflict while another erasure of them runs; ErasureGone once they are erased."""
    with cell.store.begin() as conn:
        return claim_erasure(conn, user_id, requested_by, purpose)


def claim_erasure(
    conn: sa.Connection, user_id: str, requested_by: str, purpose: str, verification: str = ""
) -> str:
    """start_erasure in the caller's transaction (a privacy officer's request commits together
    with its access-log entry). `verification`: how the officer verified the request."""
    request_id = new_id()
    now = now_ms()
    status = conn.execute(
        sa.select(USERS.c.status, USERS.c.domicile).where(USERS.c.id == user_id)
    ).first()
    if status is None:
        raise NotFound(f"no user {user_id}")
    if status.status == "erased":
        raise ErasureGone(f"user {user_id} is already erased")
    claimed = conn.execute(
        sa.update(USERS)
        .where(USERS.c.id == user_id, USERS.c.status == "active")
        .values(status="erasing")
    ).rowcount
    if not claimed:
        running = conn.execute(
            sa.select(REQUESTS.c.id).where(
                REQUESTS.c.user_id == user_id,
                REQUESTS.c.kind == "erasure",
                REQUESTS.c.status == "running",
            )
        ).scalar()
        raise Conflict(f"an erasure of user {user_id} is already running ({running})")
    # The verification rides in the job's progress record: it is part of the request, shown
    # on the receipt, and needs no column of its own.
    progress = {"counts": {}, "started_at": now, "verification": verification}
    conn.execute(
        sa.insert(REQUESTS).values(
            id=request_id,
            domicile=status.domicile,
            user_id=user_id,
            kind="erasure",
            status="running",
            requested_by=requested_by,
            purpose=purpose,
            progress=json.dumps(progress),
            receipt=None,
            file=None,
            created_at=now,
            updated_at=now,
        )
    )
    return request_id


def run_erasure(cell: Cell, request_id: str) -> Receipt:
    """Run (or resume) an erasure to the end and return its receipt."""
    with cell.store.connect() as conn:
        row = conn.execute(sa.select(REQUESTS).where(REQUESTS.c.id == request_id)).first()
    if row is None or row.kind != "erasure":
        raise NotFound(f"no erasure request {request_id}")
    if row.status == "done":
        return Receipt.from_json(json.loads(row.receipt))
    job = _Job(cell, request_id, row.user_id, row.domicile, json.loads(row.progress))
    actions: dict[str, Callable[[_Job], None]] = {
        "key": _destroy_key,
        "events": _erase_events,
        "blob_files": _erase_blob_files,
        "exports": _erase_exports,
        "recommender": _forget_recommender,
        "user": _erase_user,
    }
    for step in STEPS:
        if job.done(step):
            continue
        action = actions.get(step)
        if action is not None:
            action(job)
        else:
            _erase_table(job, DATA_MAP.table(step))
    receipt = _receipt(job, row.requested_by, row.purpose)
    with cell.store.begin() as conn:
        conn.execute(
            sa.update(REQUESTS)
            .where(REQUESTS.c.id == request_id)
            .values(status="done", receipt=json.dumps(receipt.to_json()), updated_at=now_ms())
        )
    return receipt


def erase(cell: Cell, user_id: str, requested_by: str, purpose: str = "") -> Receipt:
    return run_erasure(cell, start_erasure(cell, user_id, requested_by, purpose))


def resume_erasures(cell: Cell) -> list[Receipt]:
    """Finish erasures a crash interrupted (run at start-up and by `carveout privacy resume`)."""
    with cell.store.connect() as conn:
        pending = list(
            conn.execute(
                sa.select(REQUESTS.c.id).where(
                    REQUESTS.c.kind == "erasure", REQUESTS.c.status == "running"
                )
            ).scalars()
        )
    return [run_erasure(cell, rid) for rid in pending]


# --- the steps ------------------------------------------------------------------------------


def _destroy_key(job: _Job) -> None:
    job.cell.vault.keys.destroy(job.user_id, job.domicile, job.request_id)
    # Counted from the tombstone, not from destroy()'s answer: a resumed step finds the key
    # already gone and must still report the one key this request destroyed.
    tombstone = job.cell.vault.keys.tombstone(job.user_id)
    gone = tombstone is not None and tombstone.request_id == job.request_id
    with job.cell.store.begin() as conn:
        job.save(conn, "key", int(gone))


def _erase_events(job: _Job) -> None:
    """The subject's events go, and the per-video counters they fed lose them in the same
    transaction: aggregate statistics never count an erased user, not even for a moment."""
    with job.cell.store.begin() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(EVENTS.c.video_id, EVENTS.c.kind, EVENTS.c.watched_ms).where(
                    EVENTS.c.user_id == job.user_id
                )
            )
        ]
        vids = sorted({r["video_id"] for r in rows})
        here: dict[str, tuple[int, str]] = {}
        # In chunks: one IN list of thousands of ids costs more to build and parse than to run.
        for start in range(0, len(vids), CHUNK):
            part = vids[start : start + CHUNK]
            stmt = sa.select(VIDEOS.c.id, VIDEOS.c.duration_ms, VIDEOS.c.domicile)
            here.update(
                {
                    r.id: (r.duration_ms, r.domicile)
                    for r in conn.execute(stmt.where(VIDEOS.c.id.in_(part)))
                }
            )
        known = [r for r in rows if r["video_id"] in here]
        change = deltas(known, {v: d for v, (d, _) in here.items()})
        negated = {
            v: StatsDelta({k: -n for k, n in d.counts.items()}, -d.watch_ratio_sum)
            for v, d in change.items()
        }
        apply_deltas(conn, negated, {v: dom for v, (_, dom) in here.items()}, now_ms())
        n = conn.execute(sa.delete(EVENTS).where(EVENTS.c.user_id == job.user_id)).rowcount
        job.save(conn, "events", n)


def _erase_table(job: _Job, table: Table) -> None:
    tbl = TABLES[table.name]
    match = sa.or_(*(tbl.c[c] == job.user_id for c in table.subject_columns))
    with job.cell.store.begin() as conn:
        extra: dict[str, Any] = {}
        if table.erasure is ErasureAction.DELETE:
            if table.name == "videos":
                vids = list(conn.execute(sa.select(tbl.c.id).where(match)).scalars())
                for start in range(0, len(vids), CHUNK):
                    part = vids[start : start + CHUNK]
                    conn.execute(sa.delete(RESTRICTIONS).where(RESTRICTIONS.c.video_id.in_(part)))
                    conn.execute(sa.delete(STATS).where(STATS.c.video_id.in_(part)))
            if table.blob_columns:
                shas = conn.execute(sa.select(tbl.c.sha256).where(match)).scalars()
                extra["pending_files"] = sorted(
                    set(job.progress.get("pending_files", [])) | set(shas)
                )
            n = conn.execute(sa.delete(tbl).where(match)).rowcount
        else:
            n = _anonymise(conn, table, job.user_id)
        job.save(conn, table.name, n, **extra)


def _anonymise(conn: sa.Connection, table: Table, user_id: str) -> int:
    """Unlink rows from the subject (a fresh random id per row, so they cannot be regrouped)
    and strip what the subject wrote; the rows stay for others' integrity and the law."""
    tbl = TABLES[table.name]
    content = [
        c
        for c in table.columns
        if c.name not in table.subject_columns
        and (c.sealed or c.category.startswith("user.content"))
    ]
    total = 0
    for col_name in table.subject_columns:
        col = table.column(col_name)
        ids = list(
            conn.execute(
                sa.select(tbl.c[table.primary_key]).where(tbl.c[col_name] == user_id)
            ).scalars()
        )
        if ids:
            stripped: dict[str, Any] = {c.name: None if c.nullable else "" for c in content}
            stmt = (
                sa.update(tbl)
                .where(tbl.c[table.primary_key] == sa.bindparam("row_id"))
                .values({col_name: sa.bindparam("new_subject"), **stripped})
            )
            # One statement for all rows (executemany: one round trip, not one per row); each
            # row still gets its own fresh id.
            conn.execute(
                stmt,
                [{"row_id": r, "new_subject": None if col.nullable else new_id()} for r in ids],
            )
        total += len(ids)
    return total


def _erase_blob_files(job: _Job) -> None:
    blobs = TABLES["blobs"]
    pending = list(job.progress.get("pending_files", []))
    with job.cell.store.connect() as conn:
        still = (
            set(
                conn.execute(sa.select(blobs.c.sha256).where(blobs.c.sha256.in_(pending))).scalars()
            )
            if pending
            else set()
        )
    gone = [sha for sha in pending if sha not in still]  # another upload may share the file
    for sha in gone:
        job.cell.blobs.delete(sha)
    with job.cell.store.begin() as conn:
        job.save(conn, "blob_files", len(gone))


def _erase_exports(job: _Job) -> None:
    with job.cell.store.connect() as conn:
        rows = conn.execute(
            sa.select(REQUESTS.c.id, REQUESTS.c.file).where(
                REQUESTS.c.user_id == job.user_id,
                REQUESTS.c.kind == "export",
                REQUESTS.c.file.is_not(None),
            )
        ).all()
    for r in rows:
        export_path(job.cell, r.file).unlink(missing_ok=True)
    with job.cell.store.begin() as conn:
        conn.execute(
            sa.update(REQUESTS)
            .where(REQUESTS.c.id.in_([r.id for r in rows]))
            .values(file=None, status="erased")
        )
        job.save(conn, "exports", len(rows))


def _forget_recommender(job: _Job) -> None:
    dropped = forget_user(job.cell, job.user_id)
    with job.cell.store.begin() as conn:
        job.save(conn, "recommender", int(dropped))


def _erase_user(job: _Job) -> None:
    sealed = {c.name: None for c in DATA_MAP.table("users").sealed_columns}
    with job.cell.store.begin() as conn:
        n = conn.execute(
            sa.update(USERS)
            .where(USERS.c.id == job.user_id)
            .values(
                **sealed,
                handle_lookup=None,
                email_lookup=None,
                password_hash="",
                status="erased",
            )
        ).rowcount
        job.save(conn, "user", n)


def _receipt(job: _Job, requested_by: str, purpose: str) -> Receipt:
    counts = job.progress["counts"]
    lines = [ReceiptLine("key store", "data key destroyed (crypto-shredded)", counts["key"])]
    lines.append(ReceiptLine("database: events", "deleted; video_stats reduced", counts["events"]))
    for table in _table_steps():
        lines.append(
            ReceiptLine(f"database: {table.name}", table.erasure.value, counts[table.name])
        )
    lines += [
        ReceiptLine("blob store", "files deleted", counts["blob_files"]),
        ReceiptLine("exports", "archives deleted", counts["exports"]),
        ReceiptLine("recommender", "in-memory user state dropped", counts["recommender"]),
        ReceiptLine(
            "database: users", "anonymised: sealed fields and lookups cleared", counts["user"]
        ),
    ]
    retained = [
        ReceiptLine(f"database: {t.name}", f"retained: {t.retention.basis}", 0)
        for t in DATA_MAP.tables
        if t.erasure is ErasureAction.RETAIN
    ]
    return Receipt(
        request_id=job.request_id,
        subject_id=job.user_id,
        cell=job.cell.name,
        requested_by=requested_by,
        started_at=int(job.progress["started_at"]),
        lines=lines,
        retained=retained,
        purpose=purpose,
        verification=str(job.progress.get("verification", "")),
    )
