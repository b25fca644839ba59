"""STEP 6 cutover: fence J's writes, seal the source, apply the last changes, switch routing.

Writes of J wait at the gateway (fence) instead of failing; other jurisdictions never pause.
The routing switch is a rename of the policy file: the point of no return."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from carveout.carve import keys, replication, state, touched
from carveout.carve.apply import ApplyStats, applied_seq, catch_up, touched_videos
from carveout.carve.capture import install_capture, install_seal
from carveout.carve.ddl import prefer_to_lose, retrying
from carveout.carve.models import CarveSpec
from carveout.carve.sync import copy_missing_blobs, uses_replication
from carveout.cells import (
    POLICY_FILE,
    Cell,
    CellSpec,
    Deployment,
    Fence,
    FenceBoard,
    with_new_cell,
    write_policy_atomically,
)
from carveout.core import now_ms
from carveout.events import recompute_all

# Writes that passed the fence check just before it went up get this long to commit before the
# seal; a slower one meets the seal and is replayed after the cutover (api/replay.py), so this
# only trades a few replays against pause: a write takes a few ms on an unsaturated server.
DRAIN_S = 0.015
# The seal waits for its table locks at most capture.SEAL_WAIT_MS per attempt (on PostgreSQL);
# after a timeout or a lost deadlock it tries again soon. 40 tries bound it at a few seconds,
# well inside the gateway's HOLD_TIMEOUT_S.
SEAL_RETRY_S = 0.002
SEAL_ATTEMPTS = 40
# Catch up to within this many changes before raising the fence, so the pause stays short.
PRE_FENCE_LAG = 200
# Servers learn of a cutover when its catch-up starts and open and warm the target meanwhile
# (api.warmup: ~0.1-0.5 s for a pool of connections here); the cutover's work starts no sooner
# than this after the announcement, so the released writes find the target ready.
ANNOUNCE_LEAD_S = 1.0


@dataclass(frozen=True)
class CutoverReport:
    pause_ms: float
    final_changes: int
    pre_fence_lag: int
    # What the pause was spent on, step by step in the order they ran (ms): the fence's budget.
    steps: tuple[tuple[str, float], ...] = ()


@dataclass
class _StepClock:
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.steps.append((name, (time.monotonic() - began) * 1000))


def target_spec(spec: CarveSpec) -> CellSpec:
    return CellSpec(
        name=spec.target,
        jurisdictions=spec.jurisdictions,
        serves_rest=False,
        primary_site=spec.primary_site,
        backup_site=spec.backup_site,
        content_exchange=spec.content_exchange,
        storage=spec.storage,
    )


def announce(deployment: Deployment, spec: CarveSpec) -> Fence:
    """Tell the serving processes which cell J's writes will go to (unless already told)."""
    fences = FenceBoard(deployment.data_dir)
    told = fences.announced()
    if told is not None and told.carve == spec.target:
        return told
    fence = Fence(spec.target, frozenset(spec.jurisdictions), now_ms(), target=target_spec(spec))
    fences.announce(fence)
    return fence


def _await_lead(announced: Fence) -> None:
    wait_s = ANNOUNCE_LEAD_S - (now_ms() - announced.raised_at) / 1000
    if wait_s > 0:
        time.sleep(min(wait_s, ANNOUNCE_LEAD_S))


def _capture_on(target: Cell, codes: tuple[str, ...]) -> None:
    with target.store.begin() as conn:
        install_capture(conn, codes)


def cutover(
    deployment: Deployment,
    spec: CarveSpec,
    source: Cell,
    target: Cell,
    stats: ApplyStats,
    say: Callable[[str], None] = lambda _m: None,
) -> CutoverReport:
    with ExitStack() as held:
        caught = (
            held.enter_context(replication.catching_up(source, spec.target))
            if uses_replication(source, target)
            else None
        )
        return _cutover(deployment, spec, source, target, stats, say, caught)


def _cutover(
    deployment: Deployment,
    spec: CarveSpec,
    source: Cell,
    target: Cell,
    stats: ApplyStats,
    say: Callable[[str], None],
    caught: replication.CatchUp | None,
) -> CutoverReport:
    codes = spec.jurisdictions
    announced = announce(deployment, spec)  # already, unless this run starts at the cutover
    # The lead is waited out first: the work below readies the target for the pause with the
    # changes up to its end, and the fewer changes after it, the shorter the pause.
    _await_lead(announced)
    replicating = caught is not None
    if caught is not None:
        caught.wait()
        copy_missing_blobs(source, target)
    else:
        catch_up(source, target, codes, stats, until_lag=PRE_FENCE_LAG, max_seconds=120)
    # Planner statistics before the pause: on SQLite ANALYZE writes, and J's released writers
    # would wait for it; the last few hundred changes do not change the statistics.
    target.store.analyze()
    # Counters from the target's events as they are now, outside the pause (nothing serves from
    # the target yet); inside it only the videos the last changes touched are counted again.
    counted_at = None if replicating else applied_seq(target)
    if replicating:
        touched.watch(target)
        # The target's own capture log, on before the pause: its triggers fire for local
        # writes only (the subscription applies as a replica), and until the switch nothing
        # local writes the carved tables. The SQLite path applies the last changes itself,
        # so there it must wait until they are in.
        _capture_on(target, codes)
    recompute_all(target.store, now_ms())
    if replicating:
        # Again for the videos the subscription touched during that rebuild, so that inside
        # the pause only those of the last moments are left.
        recompute_all(target.store, now_ms(), videos=touched.take(target))
    fences = FenceBoard(deployment.data_dir)
    before = stats.changes
    clock = _StepClock()
    raised = time.monotonic()
    with clock.step("raise fence"):
        fences.raise_fence(Fence(spec.target, frozenset(codes), now_ms(), target=target_spec(spec)))
    try:
        with clock.step("drain in-flight writes"):
            time.sleep(DRAIN_S)

        def seal() -> None:
            with source.store.begin() as conn:
                prefer_to_lose(conn)
                install_seal(conn, codes, spec.target)

        with clock.step("seal source"):
            retrying(seal, pause_s=SEAL_RETRY_S, attempts=SEAL_ATTEMPTS)
        if replicating:
            # Sealed: nothing of J changes any more; once the subscriber has everything up to
            # here the target is complete. Dropping the subscription waits until after the
            # fence is down: it only carries the source's (now frozen) rows of J. The keys of
            # users who signed up during the carve (files, not replicated rows) are handed
            # over on a second thread meanwhile: the wait is mostly the subscriber's.
            with (
                clock.step("last changes (subscriber catches up; keys handed over meanwhile)"),
                ThreadPoolExecutor(1, thread_name_prefix="carve-keys") as pool,
            ):
                handing_over = pool.submit(keys.hand_over, source, target, codes)
                assert caught is not None
                caught.wait()
                handing_over.result()
            with clock.step("missing blob files"):
                copy_missing_blobs(source, target)
        else:
            with clock.step("last changes (catch-up)"):
                catch_up(source, target, codes, stats, sealed=True)
            with clock.step("hand over keys"):
                keys.hand_over(source, target, codes)  # users who signed up during the carve
            with clock.step("target capture on"):
                # From here on the target takes writes the sealed source never sees; its own
                # capture log lets verify tell them from copy errors.
                _capture_on(target, codes)
        with clock.step("target counters from its own events"):
            # Here, while nothing else writes to the target: rebuilt after the switch, it held
            # up J's released writers (SQLite's one writer; on PostgreSQL a table lock).
            if replicating:
                videos: set[str] | None = touched.take(target)
            else:
                assert counted_at is not None
                videos = touched_videos(source, target, counted_at)
            recompute_all(target.store, now_ms(), videos=videos)
        with clock.step("switch routing (policy file)"):
            with target.store.begin() as conn:
                state.put(conn, "routing_switched_at", now_ms())
            new_policy = with_new_cell(deployment.policy, target_spec(spec))
            write_policy_atomically(deployment.data_dir / POLICY_FILE, new_policy)
            deployment.refresh_policy()
    finally:
        with clock.step("release fence"):
            fences.release()
    pause_ms = (time.monotonic() - raised) * 1000
    if replicating and spec.target in deployment.policy.names:
        replication.stop(source, target, spec.target, restore_identity=False)
    say(f"write pause {pause_ms:.0f} ms; {stats.changes - before} changes applied while fenced")
    return CutoverReport(
        pause_ms=pause_ms,
        final_changes=stats.changes - before,
        pre_fence_lag=0,
        steps=tuple(clock.steps),
    )
