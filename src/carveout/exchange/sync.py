"""One exchange run from an origin cell to a receiving cell: withdraw, keep, copy, log."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from carveout.cells import Cell, Policy
from carveout.core import Conflict, new_id, now_ms
from carveout.datamap import TABLES
from carveout.exchange import log
from carveout.exchange import origin as sender
from carveout.exchange.models import OriginVideo, SyncReport
from carveout.exchange.permit import check_allowed
from carveout.exchange.receive import CopyFailed, copy_one, remoderate
from carveout.exchange.withdraw import withdraw
from carveout.moderation import VideoHash

GUESTS, VIDEOS = TABLES["guest_videos"], TABLES["videos"]
REFERRING = (TABLES["likes"], TABLES["comments"], TABLES["events"])


@contextmanager
def _receiver_lock(receiver: Cell) -> Iterator[None]:
    """One sync into a cell at a time (CLI and the serve's background pass alike): the log's
    positions and the copy-if-absent checks assume it."""
    receiver.root.mkdir(parents=True, exist_ok=True)
    with (receiver.root / "exchange.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Conflict(f"an exchange sync into cell {receiver.name!r} is running") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def referenced(receiver: Cell) -> set[str]:
    """Videos the receiver's users liked, commented on or acted on that the receiver does not
    hold: after a carve, the source's videos its moved users had interacted with."""
    out: set[str] = set()
    with receiver.store.connect() as conn:
        for tbl in REFERRING:
            stmt = (
                sa.select(tbl.c.video_id)
                .distinct()
                .where(tbl.c.video_id.not_in(sa.select(VIDEOS.c.id)))
            )
            out.update(r[0] for r in conn.execute(stmt))
    return out


def sync(
    policy: Policy,
    origin: Cell,
    receiver: Cell,
    *,
    only_referenced: bool = False,
    limit: int | None = None,
    remoderate_kept: bool = False,
    on_video: Callable[[str, str], None] = lambda _v, _a: None,
) -> SyncReport:
    """Bring the receiver's guest copies of the origin's videos up to date. Refused before
    anything is read or written unless the policy lets both cells exchange. Idempotent: a run
    interrupted anywhere is finished by running it again."""
    check_allowed(policy, origin.name, receiver.name)
    report = SyncReport(origin.name, receiver.name, new_id())
    frames: dict[str, VideoHash] = {}
    with _receiver_lock(receiver):
        held = dict(_held(receiver, origin.name))
        wanted = referenced(receiver) if only_referenced else None
        offers = sender.offered(origin, None if wanted is None else wanted | set(held))
        by_id = {v.id: v for v in offers}
        report.offered = len([v for v in offers if wanted is None or v.id in wanted])

        # Withdraw first: an erased creator's handle must not outlive this run.
        gone = [vid for vid in held if vid not in by_id]
        for vid, reason in sorted(sender.why_gone(origin, gone).items()):
            withdraw(receiver, vid, reason, report.run_id)
            report.withdrawn[reason] = report.withdrawn.get(reason, 0) + 1
            on_video(vid, f"withdrawn: {reason}")

        kept = [vid for vid in held if vid in by_id]
        _touch(receiver, kept)
        report.kept = len(kept)
        if remoderate_kept:
            for vid in kept:
                outcome = remoderate(receiver, vid, report.run_id, frames)
                report.remoderated += 1
                on_video(vid, f"remoderated: {outcome}")

        new = [
            v
            for v in _not_its_own(policy, receiver, offers)
            if v.id not in held and (wanted is None or v.id in wanted)
        ]
        for video in new[:limit] if limit is not None else new:
            try:
                copied = copy_one(origin, receiver, video, report.run_id, frames)
            except CopyFailed as exc:
                report.failures.append(f"{video.id}: {exc}")
                _log_failure(origin, receiver, video, report.run_id, str(exc))
                on_video(video.id, f"failed: {exc}")
                continue
            report.copied[copied.visibility] = report.copied.get(copied.visibility, 0) + 1
            report.bytes += copied.bytes
            on_video(video.id, f"copied: {copied.visibility}")
    return report


def _not_its_own(policy: Policy, receiver: Cell, offers: list[OriginVideo]) -> list[OriginVideo]:
    """Leave out videos domiciled in the receiver's own jurisdictions, or whose id it already
    holds as its own: between a carve's cutover and its purge the source still has the carved
    jurisdictions' videos, and those are the receiver's data, not guest content."""
    spec = policy.cell(receiver.name)

    def its_own(code: str) -> bool:  # policy.cell_for, without refusing an unmapped code
        named = any(code in c.jurisdictions for c in policy.cells)
        return code in spec.jurisdictions or (spec.serves_rest and not named)

    rest = [v for v in offers if not its_own(v.domicile)]
    taken: set[str] = set()
    with receiver.store.connect() as conn:
        ids = [v.id for v in rest]
        for i in range(0, len(ids), sender.IN_CHUNK):
            chunk = ids[i : i + sender.IN_CHUNK]
            taken.update(
                r[0] for r in conn.execute(sa.select(VIDEOS.c.id).where(VIDEOS.c.id.in_(chunk)))
            )
    return [v for v in rest if v.id not in taken]


def _held(receiver: Cell, origin: str) -> list[tuple[str, str]]:
    with receiver.store.connect() as conn:
        stmt = sa.select(GUESTS.c.video_id, GUESTS.c.sha256).where(GUESTS.c.origin_cell == origin)
        return [(r.video_id, r.sha256) for r in conn.execute(stmt)]


def _touch(receiver: Cell, kept: list[str]) -> None:
    """The origin still publishes these: note when that was last seen. (Handles cannot change
    in carveout, so the sealed handle stays as copied.)"""
    now = now_ms()
    with receiver.store.begin() as conn:
        for i in range(0, len(kept), sender.IN_CHUNK):
            chunk = kept[i : i + sender.IN_CHUNK]
            conn.execute(
                sa.update(GUESTS).where(GUESTS.c.video_id.in_(chunk)).values(synced_at=now)
            )


def _log_failure(
    origin: Cell, receiver: Cell, video: OriginVideo, run_id: str, reason: str
) -> None:
    with receiver.store.begin() as conn:
        log.append(
            conn,
            run_id=run_id,
            direction="received",
            origin=origin.name,
            receiver=receiver.name,
            video_id=video.id,
            action="failed",
            nbytes=0,
            outcome=reason,
        )
