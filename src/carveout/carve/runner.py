"""The carve from start to finish: phases in order, each skipped when the saved state says done.

A carve killed at any instant is resumed by running it again: completed phases are skipped, the
copy continues from its last committed chunk, change-apply from its last committed position."""

from __future__ import annotations

import errno
import shutil
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import sqlalchemy as sa

from carveout.carve import keys, replication, state
from carveout.carve.apply import lag
from carveout.carve.capture import remove_triggers
from carveout.carve.cutover import target_spec
from carveout.carve.ddl import retrying
from carveout.carve.models import PHASES, CarveFailed, CarveSpec, Phase, carves_dir, spec_path
from carveout.carve.phases import (
    YIELDING_PHASES,
    CarveOutcome,
    QuietReporter,
    Reporter,
    run_phase,
)
from carveout.carve.plan import validate
from carveout.carve.priority import at_lower_priority
from carveout.cells import Cell, Deployment, FenceBoard, open_cell
from carveout.cells.registry import key_dir
from carveout.core import CarveoutError, Conflict, NotFound, now_ms
from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import drop_database, schema_head

# After the cutover, before verify (see run): J's released writes take well under a second.
RELEASED_WRITES_GRACE_S = 0.5


def disk_full(exc: BaseException) -> bool:
    """ENOSPC from a file write, SQLite's "database or disk is full", PostgreSQL's 53100."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    orig = getattr(exc, "orig", None)
    if orig is not None and getattr(orig, "sqlstate", None) == "53100":
        return True
    return "disk is full" in str(exc) or "No space left on device" in str(exc)


def start(
    deployment: Deployment,
    jurisdictions: str | tuple[str, ...],
    target: str,
    *,
    storage: str = "sqlite",
    primary_site: str | None = None,
    backup_site: str | None = None,
) -> CarveSpec:
    """Record a new carve (its pointer file); refuses overlaps with a carve in progress."""
    codes, source = validate(deployment, jurisdictions, target)
    for other in in_progress(deployment):
        if other.source == source or set(other.jurisdictions) & set(codes):
            raise Conflict(
                f"carve into {other.target!r} ({', '.join(other.jurisdictions)} from "
                f"{other.source!r}) is in progress: resume or abort it first"
            )
    src = deployment.policy.cell(source)
    for site in (primary_site, backup_site):
        if site is not None and site not in deployment.policy.sites:
            raise CarveFailed(f"site {site!r} is not declared in the residency policy")
    spec = CarveSpec(
        target=target,
        jurisdictions=codes,
        source=source,
        storage=storage,
        primary_site=primary_site or src.primary_site,
        backup_site=backup_site if backup_site is not None else src.backup_site,
        content_exchange=src.content_exchange,
        created_at=now_ms(),
    )
    path = spec_path(deployment.data_dir, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(spec.to_json(), encoding="utf-8")
    tmp.replace(path)
    return spec


def in_progress(deployment: Deployment) -> list[CarveSpec]:
    folder = carves_dir(deployment.data_dir)
    if not folder.is_dir():
        return []
    return [CarveSpec.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))]


class CarveFinished(CarveoutError):
    """Asked to resume a carve that completed already (e.g. killed right after its last step)."""

    status = 200


def load_spec(deployment: Deployment, target: str) -> CarveSpec:
    path = spec_path(deployment.data_dir, target)
    if not path.is_file():
        if (carves_dir(deployment.data_dir) / "finished" / f"{target}.json").is_file():
            raise CarveFinished(f"the carve into {target!r} has finished: nothing to resume")
        raise NotFound(f"no carve in progress into {target!r}")
    return CarveSpec.from_json(path.read_text())


def open_target(deployment: Deployment, spec: CarveSpec) -> Cell:
    keys.adopt_lookup_key(deployment.data_dir, spec.source, spec.target)
    return open_cell(deployment.data_dir, target_spec(spec))


def phases_done(target: Cell) -> list[str]:
    with target.store.connect() as conn:
        return [p.value for p in PHASES if state.get(conn, f"phase:{p.value}") is not None]


def check_source_schema(source: Cell) -> None:
    """The carve copies the schema it knows; a source migrated or altered mid-carve is refused
    (abort, then carve again with code that knows the new schema)."""
    expected = {t.name: list(t.column_names) for t in DATA_MAP.all_tables}
    version = source.store.schema_version()
    if version != schema_head():
        raise CarveFailed(
            f"the source's schema is at version {version}, this carve expects {schema_head()}: "
            "it changed mid-carve; abort and start again"
        )
    found = source.store.columns()
    if found != expected:
        changed = sorted(
            name for name in set(found) | set(expected) if found.get(name) != expected.get(name)
        )
        raise CarveFailed(
            f"the source's tables changed mid-carve ({', '.join(changed)}): abort and start again"
        )


def _mark(target: Cell, phase: Phase, started: float, details: dict[str, Any]) -> None:
    with target.store.begin() as conn:
        state.put(
            conn,
            f"phase:{phase.value}",
            {"at": now_ms(), "seconds": round(time.monotonic() - started, 3), **details},
        )


def run(
    deployment: Deployment,
    spec: CarveSpec,
    *,
    through: Phase = Phase.PURGE,
    reporter: Reporter | None = None,
    after_phase: Callable[[Phase], None] = lambda _p: None,
) -> CarveOutcome:
    rep = reporter or QuietReporter()
    out = CarveOutcome(spec=spec)
    source = deployment.cell(spec.source)
    target = open_target(deployment, spec)
    done = set(phases_done(target))
    current = Phase.PREPARE
    try:
        for phase in PHASES:
            if phase.value in done:
                continue
            current = phase
            rep.step(phase)
            check_source_schema(source)
            began = time.monotonic()
            work = partial(run_phase, deployment, spec, phase, out, rep, began, source, target)
            details = at_lower_priority(work) if phase in YIELDING_PHASES else work()
            _mark(target, phase, began, details)
            out.seconds[phase.value] = round(time.monotonic() - began, 3)
            after_phase(phase)
            if phase is through:
                break
            if phase is Phase.CUTOVER:
                # The writes held at the fence all reach the target at once when it is released;
                # verify's first act is to read every row of J on both sides. A moment's wait
                # lets that burst through before verify's reads compete with it for the cores
                # and the database servers (on PostgreSQL verify's backends run un-niced).
                time.sleep(RELEASED_WRITES_GRACE_S)
    except (OSError, sa.exc.OperationalError) as exc:
        if disk_full(exc):
            raise CarveFailed(
                f"{current.value}: no space left on the target's or the source's disk "
                f"({exc}); free space, then `carveout carve resume --to {spec.target}`: the "
                "progress saved so far is kept and the source keeps serving"
            ) from exc
        raise
    if phases_done(target) == [p.value for p in PHASES]:
        finished = carves_dir(deployment.data_dir) / "finished"
        finished.mkdir(exist_ok=True)
        spec_path(deployment.data_dir, spec.target).replace(finished / f"{spec.target}.json")
    return out


def status(deployment: Deployment, spec: CarveSpec) -> dict[str, Any]:
    target = open_target(deployment, spec)
    source = deployment.cell(spec.source)
    with target.store.connect() as conn:
        saved = state.all_state(conn)
    fence = FenceBoard(deployment.data_dir).current()
    return {
        "spec": spec,
        "fence": None
        if fence is None
        else {
            "jurisdictions": sorted(fence.jurisdictions),
            "raised_at": fence.raised_at,
            "held_ms": now_ms() - fence.raised_at,
            "owner": fence.owner,
        },
        "phases_done": phases_done(target),
        "lag": lag(source, target),
        "routing_switched": spec.target in deployment.policy.names,
        "state": saved,
    }


def abort(deployment: Deployment, spec: CarveSpec) -> None:
    """Undo a carve that has not switched routing yet: the source as before, no target."""
    deployment.refresh_policy()
    if spec.target in deployment.policy.names:
        raise CarveFailed(
            f"the carve is past its point of no return: {', '.join(spec.jurisdictions)} are "
            f"served by {spec.target!r} now. To undo it, carve them back into "
            f"{spec.source!r}'s keeping with a new carve from {spec.target!r}."
        )
    source = deployment.cell(spec.source)
    if source.store.backend == "postgresql" and spec.storage != "sqlite":
        target = open_target(deployment, spec)
        replication.stop(source, target, spec.target)
        target.store.dispose()

    def untrigger() -> None:
        # The source keeps serving: remove_triggers gives way to its writers (see capture.py).
        with source.store.begin() as conn:
            remove_triggers(conn, capture=True, seal=True)
            conn.execute(sa.delete(TABLES["carve_changes"]))

    retrying(untrigger)
    FenceBoard(deployment.data_dir).release()
    root = deployment.data_dir / "cells" / spec.target
    if spec.storage != "sqlite":
        drop_database(spec.storage)
    shutil.rmtree(root, ignore_errors=True)
    # The target's key store holds copies of J's user keys: they go with the target.
    shutil.rmtree(key_dir(deployment.data_dir, spec.target), ignore_errors=True)
    spec_path(deployment.data_dir, spec.target).unlink(missing_ok=True)
