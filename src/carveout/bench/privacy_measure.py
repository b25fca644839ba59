"""One measured export and erasure: carveout through its HTTP API, the baseline through a plain
DB-API connection; then the checks that make the figures count (archive, receipt, scan).

carveout: `POST /v1/me/exports`, polled with `GET /v1/me/exports/{id}` until done, then the zip
downloaded from `.../archive`, timed from the POST to the last byte; `DELETE /v1/me`, timed to
the receipt. The baseline is the script a user would write instead: per table `SELECT * ...
WHERE <subject column> = ?` dumped to a JSON file (no decryption, no zip, no media), and
`DELETE ... WHERE <subject column> = ?` over the same tables in one transaction (no key
destruction, no counter reduction, no receipt)."""

from __future__ import annotations

import io
import json
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import psycopg

from carveout.backup.pgtools import libpq_url
from carveout.bench.api import BenchError
from carveout.bench.privacy_subjects import STEMS, Subject
from carveout.cells import Cell
from carveout.datamap import ErasureAction, Table
from carveout.privacy import STEPS, subject_tables
from carveout.privacy.exports import export_dir
from carveout.privacy.scan import Hit, scan

POLL_S = 0.01  # export status poll interval: the export time's resolution
NOT_TABLES = ("key", "events", "blob_files", "exports", "recommender", "user")


def _auth(subject: Subject) -> dict[str, str]:
    return {"Authorization": f"Bearer {subject.token}"}


def http_export(client: httpx.Client, subject: Subject) -> tuple[float, bytes]:
    """Seconds from the request to the downloaded archive, and the archive."""
    began = time.perf_counter()
    r = client.post("/v1/me/exports", headers=_auth(subject))
    if r.status_code != 202:
        raise BenchError(f"POST /v1/me/exports: HTTP {r.status_code} {r.text[:300]}")
    request_id = r.json()["id"]
    while True:
        state = client.get(f"/v1/me/exports/{request_id}", headers=_auth(subject)).json()
        if state.get("status") != "running":
            break
        time.sleep(POLL_S)
    if state.get("status") != "done":
        raise BenchError(f"export {request_id} ended {state}")
    got = client.get(state["archive"], headers=_auth(subject))
    if got.status_code != 200:
        raise BenchError(f"GET {state['archive']}: HTTP {got.status_code}")
    return time.perf_counter() - began, got.content


def http_erase(client: httpx.Client, subject: Subject) -> tuple[float, dict[str, Any]]:
    """Seconds from `DELETE /v1/me` to its receipt, and the receipt."""
    began = time.perf_counter()
    r = client.delete("/v1/me", headers=_auth(subject))
    seconds = time.perf_counter() - began
    if r.status_code != 200:
        raise BenchError(f"DELETE /v1/me: HTTP {r.status_code} {r.text[:300]}")
    receipt: dict[str, Any] = r.json()
    return seconds, receipt


class PlainScript:
    """The baseline: one DB-API connection, opened once, as a user's script would hold it."""

    def __init__(self, cell: Cell) -> None:
        self.sqlite = cell.store.backend == "sqlite"
        self.conn: Any
        if self.sqlite:
            self.conn = sqlite3.connect(cell.root / "cell.db", timeout=60)
            # The cell's own durability (WAL, synchronous=NORMAL): both sides commit alike.
            self.conn.execute("PRAGMA synchronous=NORMAL")
        else:
            self.conn = psycopg.connect(libpq_url(cell.store.url))

    def close(self) -> None:
        self.conn.close()

    def _where(self, table: Table) -> str:
        mark = "?" if self.sqlite else "%s"
        return " OR ".join(f"{c} = {mark}" for c in table.subject_columns)

    def export(self, user_id: str, out: Path) -> float:
        """Seconds to dump every subject table's rows about the user to one JSON file."""
        began = time.perf_counter()
        dump: dict[str, list[dict[str, Any]]] = {}
        cur = self.conn.cursor()
        for table in subject_tables():
            sql = f"SELECT * FROM {table.name} WHERE {self._where(table)}"
            cur.execute(sql, [user_id] * len(table.subject_columns))
            names = [d[0] for d in cur.description]
            dump[table.name] = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        self.conn.commit()
        out.write_text(json.dumps(dump, default=str), encoding="utf-8")
        return time.perf_counter() - began

    def erase(self, user_id: str) -> float:
        """Seconds to delete the user's rows from the tables erasure changes, in one transaction."""
        began = time.perf_counter()
        cur = self.conn.cursor()
        for table in reversed(subject_tables()):
            if table.erasure is ErasureAction.RETAIN:
                continue
            sql = f"DELETE FROM {table.name} WHERE {self._where(table)}"
            cur.execute(sql, [user_id] * len(table.subject_columns))
        self.conn.commit()
        return time.perf_counter() - began


def check_archive(archive: bytes, subject: Subject, held: dict[str, int]) -> dict[str, Any]:
    """The export holds every row the user had (and its own request), their personal fields
    opened, their media; returns its derived/recommender.json."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        wrong = {}
        for table in subject_tables():
            rows = json.loads(zf.read(f"data/{table.name}.json"))["rows"]
            want = held[table.name] + (1 if table.name == "privacy_requests" else 0)
            if len(rows) != want:
                wrong[table.name] = (len(rows), want)
        users = json.loads(zf.read("data/users.json"))["rows"]
        media = [n for n in zf.namelist() if n.startswith("media/")]
        derived: dict[str, Any] = json.loads(zf.read("derived/recommender.json"))
    if wrong:
        raise BenchError(f"{subject.kind} export {subject.user_id}: rows (archive, held) {wrong}")
    mine = [(u["email"], u["handle"], u["display_name"]) for u in users]
    if mine != [(subject.email, subject.handle, subject.display_name)]:
        raise BenchError(f"{subject.kind} export {subject.user_id}: personal fields {mine}")
    if sorted(m.removeprefix("media/") for m in media) != sorted(set(subject.blob_shas)):
        raise BenchError(f"{subject.kind} export: {len(media)} media files, wanted the user's")
    return derived


def expected_receipt(
    held: dict[str, int], subject: Subject, exports: int, recommender: int
) -> dict[str, int]:
    """What an exact receipt says, from the rows the user had before the erasure."""
    out = {"key store": 1, "database: events": held["events"]}
    for step in STEPS:
        if step not in NOT_TABLES:
            out[f"database: {step}"] = held[step]
    out.update(
        {
            "blob store": len(set(subject.blob_shas)),
            "exports": exports,
            "recommender": recommender,
            "database: users": 1,
        }
    )
    return out


def check_receipt(receipt: dict[str, Any], subject: Subject, expected: dict[str, int]) -> None:
    """A wrong receipt fails the run: it is a broken promise, not a slow one."""
    got = {line["store"]: line["records"] for line in receipt["stores"]}
    problems = []
    if receipt["subject_id"] != subject.user_id:
        problems.append(f"subject {receipt['subject_id']}")
    if got != expected:
        keys = sorted(set(got) | set(expected))
        problems += [
            f"{k}: {got.get(k)} (had {expected.get(k)})"
            for k in keys
            if got.get(k) != expected.get(k)
        ]
    retained = {line["store"] for line in receipt["retained"]}
    for table in subject_tables():
        if table.erasure is ErasureAction.RETAIN and f"database: {table.name}" not in retained:
            problems.append(f"retained {table.name} not listed")
    if problems:
        raise BenchError(
            f"{subject.kind} user {subject.user_id}: the receipt is wrong: " + "; ".join(problems)
        )


def control_scan(cell: Cell, subject: Subject) -> int:
    """Before the erasure the user's export holds their strings: the scan must see them there,
    or its zero hits afterwards would prove nothing."""
    hits = scan([export_dir(cell)], subject.needles)
    found = {h.needle for h in hits}
    if found != set(subject.needles):
        raise BenchError(
            f"control scan: the export of {subject.user_id} should hold all of "
            f"{subject.needles}, the scan found {sorted(found)}: the scan is blind"
        )
    return len(hits)


def after_scan(paths: list[Path], subjects: list[Subject]) -> list[Hit]:
    """Byte-level scan for the erased users' email, handle and display name. For many users,
    the parts all their strings share are looked for first, and the full strings only in the
    files holding one: a file holding a string (in any case or encoding the scan tries) holds
    its part in the same form, so the hits are the same, for a fraction of the searching."""
    needles = [n for s in subjects for n in s.needles]
    if len(subjects) <= 1:
        return scan(paths, needles)
    if any(not any(stem in n for stem in STEMS) for n in needles):
        raise BenchError("a subject's string lacks the shared part the scan looks for first")
    candidates = sorted({h.path for h in scan(paths, STEMS)})
    return scan(candidates, needles)


def hits_error(hits: list[Hit], where: str) -> BenchError:
    shown = "; ".join(f"{h.needle!r} in {h.path} at {h.offset}" for h in hits[:10])
    return BenchError(f"ERASED DATA FOUND {where}: {len(hits)} hit(s): {shown}")
