"""`carveout load kuairec`: import the real KuaiRec data into the cells of a deployment.

Everything is read, checked and planned before the first write: a missing file, a malformed
row or a jurisdiction no cell serves fails the import with nothing written. Rows then go to
the cell serving their domicile in chunks; if a write fails, the rows and blob files already
written are removed again, so a failed import can simply be re-run.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout.accounts import sealed_user_rows
from carveout.cells import Cell, Deployment
from carveout.core import Conflict, InvalidInput, now_ms
from carveout.datamap import TABLES
from carveout.datasets import kuairec_files as files
from carveout.datasets.kuairec_rows import TABLE_ORDER, MediaFile, Plan, build_plan, reference_day
from carveout.datasets.sources import require
from carveout.events.stats import recompute_all
from carveout.storage import sha256_file

CHUNK_ROWS = 5_000
EXTERNAL_PREFIX = "kuairec:"

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stages are `read`, then each table in insert order."""


@dataclass(frozen=True)
class LoadReport:
    skipped: bool
    seed: int
    reference_ms: int = 0
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> domicile -> n
    cells: dict[str, dict[str, int]] = field(default_factory=dict)  # cell -> table -> n
    cell_of: dict[str, str] = field(default_factory=dict)  # domicile -> cell serving it
    blob_files: dict[str, int] = field(default_factory=dict)  # cell -> media files it holds
    cross_cell_events: int = 0  # events whose video lives in another cell
    seconds: float = 0.0
    message: str = ""

    def total(self, table: str) -> int:
        return sum(self.rows.get(table, {}).values())


def kuairec_videos(cell: Cell) -> int:
    """How many videos imported from KuaiRec the cell holds."""
    videos = TABLES["videos"]
    stmt = (
        sa.select(sa.func.count())
        .select_from(videos)
        .where(videos.c.external_ref.like(f"{EXTERNAL_PREFIX}%"))
    )
    with cell.store.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def load_kuairec(
    deployment: Deployment,
    datasets: Path,
    *,
    seed: int = 7,
    if_empty: bool = False,
    progress: Progress | None = None,
    reference_ms: int | None = None,
) -> LoadReport:
    """Import KuaiRec into the deployment's cells, each row into the cell serving its domicile.

    Raises Conflict when a cell already holds KuaiRec videos; with `if_empty` it returns a
    skipped report instead. `reference_ms` defaults to today's midnight UTC."""
    started = time.perf_counter()
    report = progress or (lambda _stage, _done, _total: None)
    if seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer, got {seed}")
    require(datasets, files.REQUIRED_FILES, "the KuaiRec import")
    loaded = {c.name: n for c in deployment.cells() if (n := kuairec_videos(c))}
    if loaded:
        where = ", ".join(f"{name} ({n:,} videos)" for name, n in sorted(loaded.items()))
        message = f"KuaiRec data is already loaded in cell(s) {where}"
        if if_empty:
            return LoadReport(skipped=True, seed=seed, message=f"{message}: skipped")
        raise Conflict(
            f"{message}; the import runs once per deployment "
            "(use --if-empty to skip quietly, or start from a fresh data directory)"
        )

    plan = _read_and_plan(datasets, seed, reference_ms or reference_day(now_ms()), report)
    route = {d: deployment.policy.cell_for(d).name for d in _domiciles(plan)}
    _refuse_clashes(deployment, plan)
    per_cell: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for table in TABLE_ORDER:
        for row in plan.rows[table]:
            per_cell[route[row["domicile"]]][table].append(row)

    cells = {name: deployment.cell(name) for name in sorted(per_cell)}
    writer = _Writer(cells, report)
    try:
        writer.put_blobs(plan, per_cell)
        for table in TABLE_ORDER:
            writer.insert(table, {name: per_cell[name][table] for name in cells})
        stamp = now_ms()
        for done, cell in enumerate(cells.values(), start=1):
            recompute_all(cell.store, stamp)
            cell.store.analyze()
            report("video_stats", done, len(cells))
    except BaseException as exc:
        try:
            writer.undo()
        except Exception as undo_error:  # keep the original error; say the cleanup failed too
            exc.add_note(f"removing the partly imported rows failed as well: {undo_error}")
        raise
    return _report(plan, route, per_cell, writer, seed, time.perf_counter() - started)


def _read_and_plan(datasets: Path, seed: int, reference_ms: int, report: Progress) -> Plan:
    steps = 5
    report("read", 0, steps)
    users = files.read_users(datasets / files.USERS_CSV)
    report("read", 1, steps)
    videos = files.read_videos(datasets / files.VIDEOS_CSV)
    report("read", 2, steps)
    watches = files.read_watches(datasets / files.WATCH_CSV)
    report("read", 3, steps)
    durations = files.read_durations(datasets / files.DURATIONS_CSV)
    media = []
    for name in files.MEDIA_FILES:
        path = datasets / files.MEDIA_DIR / name
        sha, size = sha256_file(path)
        media.append(MediaFile(files.probe_media(path), sha, size))
    report("read", 4, steps)
    plan = build_plan(
        users,
        videos,
        watches,
        durations,
        media,
        seed=seed,
        reference_ms=reference_ms,
        watch_source=str(datasets / files.WATCH_CSV),
    )
    report("read", 5, steps)
    return plan


def _refuse_clashes(deployment: Deployment, plan: Plan) -> None:
    """Handles and emails are unique in every cell: refuse before writing if one is taken."""
    users = TABLES["users"]
    for column in ("handle", "email"):
        lookup = users.c[f"{column}_lookup"]
        for cell in deployment.cells():
            # Sealed values are compared through the cell's keyed lookup hash.
            wanted = {cell.vault.lookup(row[column]): row[column] for row in plan.rows["users"]}
            hashes = list(wanted)
            with cell.store.connect() as conn:
                taken = [
                    wanted[str(value)]
                    for start in range(0, len(hashes), 500)
                    for value in conn.execute(
                        sa.select(lookup).where(lookup.in_(hashes[start : start + 500]))
                    ).scalars()
                ]
            if taken:
                raise Conflict(
                    f"cell {cell.name} already has {len(taken)} user(s) with the {column} an "
                    f"imported KuaiRec user would get (e.g. {', '.join(sorted(taken)[:3])}); "
                    "nothing was imported"
                )


def _domiciles(plan: Plan) -> set[str]:
    return {row["domicile"] for rows in plan.rows.values() for row in rows}


class _Writer:
    """Writes chunks into cells and remembers what it wrote, so a failure can be undone."""

    def __init__(self, cells: dict[str, Cell], report: Progress) -> None:
        self.cells = cells
        self.report = report
        self.written: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.new_files: dict[str, list[str]] = defaultdict(list)
        self.files: Counter[str] = Counter()

    def put_blobs(self, plan: Plan, per_cell: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
        for name, cell in self.cells.items():
            for sha in sorted({row["sha256"] for row in per_cell[name]["blobs"]}):
                stored, _size, new = cell.blobs.put_file(plan.blob_files[sha])
                if stored != sha:
                    raise InvalidInput(f"{plan.blob_files[sha]} changed while it was imported")
                if new:
                    self.new_files[name].append(sha)
                self.files[name] += 1

    def insert(self, table: str, rows_by_cell: dict[str, list[dict[str, Any]]]) -> None:
        total = sum(len(rows) for rows in rows_by_cell.values())
        done = 0
        self.report(table, 0, total)
        for name, rows in rows_by_cell.items():
            cell = self.cells[name]
            for start in range(0, len(rows), CHUNK_ROWS):
                chunk = rows[start : start + CHUNK_ROWS]
                if table == "users":
                    chunk = sealed_user_rows(cell.vault, chunk)
                cell.store.bulk_insert(table, chunk)
                self.written[name][table].extend(row["id"] for row in chunk)
                done += len(chunk)
                self.report(table, done, total)

    def undo(self) -> None:
        """Best effort: delete what this import wrote (stats of its videos included)."""
        for name, tables in self.written.items():
            store = self.cells[name].store
            videos = tables.get("videos", [])
            targets: list[tuple[str, str, Sequence[str]]] = [("video_stats", "video_id", videos)]
            targets += [(t, "id", tables.get(t, [])) for t in reversed(TABLE_ORDER)]
            with store.begin() as conn:
                for table, key, ids in targets:
                    column = TABLES[table].c[key]
                    for start in range(0, len(ids), 500):
                        conn.execute(
                            sa.delete(TABLES[table]).where(column.in_(ids[start : start + 500]))
                        )
            self.cells[name].vault.keys.discard(tables.get("users", []))
        for name, shas in self.new_files.items():
            for sha in shas:
                self.cells[name].blobs.delete(sha)


def _report(
    plan: Plan,
    route: dict[str, str],
    per_cell: dict[str, dict[str, list[dict[str, Any]]]],
    writer: _Writer,
    seed: int,
    seconds: float,
) -> LoadReport:
    rows: dict[str, dict[str, int]] = {}
    for table in TABLE_ORDER:
        rows[table] = dict(sorted(Counter(r["domicile"] for r in plan.rows[table]).items()))
    rows["video_stats"] = dict(rows["videos"])  # one stats row per video, same domicile
    cells = {
        name: {table: len(per_cell[name][table]) for table in TABLE_ORDER}
        | {"video_stats": len(per_cell[name]["videos"])}
        for name in sorted(per_cell)
    }
    video_cell = {v["id"]: route[v["domicile"]] for v in plan.rows["videos"]}
    cross = sum(1 for e in plan.rows["events"] if video_cell[e["video_id"]] != route[e["domicile"]])
    return LoadReport(
        skipped=False,
        seed=seed,
        reference_ms=plan.reference_ms,
        rows=rows,
        cells=cells,
        cell_of=dict(sorted(route.items())),
        blob_files=dict(sorted(writer.files.items())),
        cross_cell_events=cross,
        seconds=seconds,
        message=f"loaded KuaiRec into {len(cells)} cell(s)",
    )
