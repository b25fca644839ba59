"""The receiving side: write one guest copy (media, rows, this cell's own moderation) at once."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.core import now_ms
from carveout.datamap import TABLES
from carveout.events.stats import zero_row
from carveout.exchange import handles, log
from carveout.exchange.guests import guest_part
from carveout.exchange.models import OriginVideo
from carveout.moderation import VideoHash, Visibility, hash_video
from carveout.moderation.decisions import VIDEO_STATUS, apply_to_video
from carveout.moderation.service import screen_video

VIDEOS, BLOBS, STATS = TABLES["videos"], TABLES["blobs"], TABLES["video_stats"]
GUESTS, DECISIONS = TABLES["guest_videos"], TABLES["moderation_decisions"]

# Held guest copies stay unserved (`processing`) and are not queued for review: a statement of
# reasons and an appeal belong to the creator, who is not this cell's user.


# The marker a carve's seal raises on the source (carve.capture.MOVED_MARKER; the carve package
# sits above this one, so the literal is repeated rather than imported).
SEALED = "carveout:moved"


class CopyFailed(Exception):
    """One video could not be copied; nothing of it was written in the receiver."""


@dataclass(frozen=True)
class Copied:
    visibility: str
    bytes: int


def _reasons(visibility: Visibility, rule: str, ground: str, signals: dict[str, object]) -> str:
    return json.dumps(
        {"visibility": visibility.value, "rule": rule, "ground": ground, "signals": signals},
        sort_keys=True,
        default=str,
    )


def copy_one(
    origin: Cell,
    receiver: Cell,
    video: OriginVideo,
    run_id: str,
    frames: dict[str, VideoHash],
) -> Copied:
    """Copy the media, screen it with the receiver's banks, classifier and rules, then write the
    video, blob, counters, restrictions, guest entry and log entry in one receiver transaction.
    Re-running after a crash at any point gives the same result: the blob store is
    content-addressed and the rows are written only if the guest copy is not there yet."""
    if not origin.blobs.exists(video.sha256):
        raise CopyFailed("media file missing at the origin")
    if receiver.blobs.exists(video.sha256):
        # Already here (another copy or the receiver's own upload of the same file), hashed
        # when it arrived: many videos share one media file, and copying it again per video
        # would move gigabytes for nothing.
        sha, size, created = video.sha256, receiver.blobs.size(video.sha256), False
        moved = 0
    else:
        sha, size, created = receiver.blobs.put_file(origin.blobs.local_path(video.sha256))
        moved = size
    try:
        if sha != video.sha256:
            raise CopyFailed(f"media file at the origin does not hash to {video.sha256}")
        path = receiver.blobs.local_path(sha)
        if sha not in frames:
            frames[sha] = hash_video(path)
        screening = screen_video(receiver, path, video.caption, frames[sha])
        verdict = screening.verdict
        sealed_handle = handles.seal(
            receiver, video.creator_pseudonym, video.domicile, video.creator_handle
        )
        now = now_ms()
        # The sender records what left it first: a crash before the receiver commits leaves an
        # extra "sent" line, never a copy the origin has no record of.
        with origin.store.begin() as conn:
            log.append(
                conn,
                run_id=run_id,
                direction="sent",
                origin=origin.name,
                receiver=receiver.name,
                video_id=video.id,
                action="copied",
                nbytes=moved,
                outcome="sent",
            )
        with receiver.store.begin() as conn:
            if conn.execute(
                sa.select(GUESTS.c.video_id).where(GUESTS.c.video_id == video.id)
            ).first():
                return Copied("already there", 0)
            blob_id = conn.execute(
                sa.select(BLOBS.c.id).where(
                    BLOBS.c.sha256 == sha, BLOBS.c.domicile == video.domicile
                )
            ).scalar()
            if blob_id is not None and not _guest_blob(conn, blob_id):
                # This cell's own row of that file and jurisdiction: only a carve's source holds
                # such rows (of the carved jurisdictions, until its purge). A copy sharing it
                # would keep it, with its owner, past the purge; the purge removes it first.
                raise CopyFailed(
                    f"cell {receiver.name!r} still holds this media file as its own data of "
                    f"{video.domicile} (a carve's purge is due): copied at a later sync"
                )
            # The guest entry first: the seal of a carve's source lets a row of the carved
            # jurisdictions through only as part of a guest copy, which this entry makes it.
            conn.execute(
                sa.insert(GUESTS).values(
                    video_id=video.id,
                    origin_cell=origin.name,
                    origin_domicile=video.domicile,
                    creator_id=video.creator_pseudonym,
                    creator_handle=sealed_handle,
                    sha256=sha,
                    size_bytes=size,
                    visibility=verdict.visibility.value,
                    reasons=_reasons(
                        verdict.visibility, verdict.rule, verdict.ground.value, verdict.signals
                    ),
                    created_at=now,
                    synced_at=now,
                )
            )
            if blob_id is None:
                blob_id = video.id  # one guest blob row per copy: removed with it
                conn.execute(
                    sa.insert(BLOBS).values(
                        id=blob_id,
                        domicile=video.domicile,
                        sha256=sha,
                        size_bytes=size,
                        content_type=video.content_type,
                        owner_id=video.creator_pseudonym,
                        created_at=now,
                    )
                )
            conn.execute(
                sa.insert(VIDEOS).values(
                    id=video.id,
                    domicile=video.domicile,
                    creator_id=video.creator_pseudonym,
                    caption=video.caption,
                    hashtags=video.hashtags,
                    category=video.category,
                    duration_ms=video.duration_ms,
                    width=video.width,
                    height=video.height,
                    blob_id=blob_id,
                    status=VIDEO_STATUS[verdict.visibility],
                    external_ref=None,
                    # Written now, not at the origin's upload: the catalogue finds new rows by
                    # creation time, and this cell holds the copy from now on.
                    created_at=now,
                    origin_cell=origin.name,
                )
            )
            conn.execute(sa.insert(STATS).values(zero_row(video.id, video.domicile, now)))
            apply_to_video(conn, video.id, video.domicile, verdict)
            log.append(
                conn,
                run_id=run_id,
                direction="received",
                origin=origin.name,
                receiver=receiver.name,
                video_id=video.id,
                action="copied",
                nbytes=moved,
                outcome=verdict.visibility.value
                + (f": {verdict.rule}" if verdict.visibility is not Visibility.PUBLISHED else ""),
            )
    except sa.exc.DBAPIError as exc:
        if created:
            receiver.blobs.delete(sha)
        if SEALED in str(exc):
            # The seal lets guest copies through; one installed by an older carveout does not.
            raise CopyFailed(
                f"cell {receiver.name!r} is sealed against {video.domicile} by a seal that "
                "refuses guest copies (installed by an older version): install it again "
                "(carveout.carve.purge.upgrade_seals) and sync again"
            ) from exc
        raise
    except BaseException:
        if created:
            receiver.blobs.delete(sha)
        raise
    return Copied(verdict.visibility.value, moved)


def _guest_blob(conn: sa.Connection, blob_id: str) -> bool:
    """The blob row is a guest copy's (exchange.GUEST_PARTS: a guest entry for its file and
    domicile), not the cell's own."""
    guest = guest_part("blobs")
    assert guest is not None
    found = conn.execute(sa.select(BLOBS.c.id).where(BLOBS.c.id == blob_id, guest)).first()
    return found is not None


def remoderate(receiver: Cell, video_id: str, run_id: str, frames: dict[str, VideoHash]) -> str:
    """Screen a guest copy again with the receiver's current banks, classifier and rules (a
    hash added to a bank after the copy was made must reach it too). A copy one of the
    receiver's moderators decided on (after a report) keeps that human decision."""
    with receiver.store.connect() as conn:
        reviewed = conn.execute(
            sa.select(DECISIONS.c.id).where(DECISIONS.c.target_id == video_id).limit(1)
        ).first()
        if reviewed is not None:
            return "decided by a reviewer here"
        row = conn.execute(
            sa.select(VIDEOS.c.caption, VIDEOS.c.domicile, GUESTS.c.sha256, GUESTS.c.origin_cell)
            .select_from(VIDEOS.join(GUESTS, GUESTS.c.video_id == VIDEOS.c.id))
            .where(VIDEOS.c.id == video_id)
        ).one()
    path = receiver.blobs.local_path(row.sha256)
    if row.sha256 not in frames:
        frames[row.sha256] = hash_video(path)
    verdict = screen_video(receiver, path, row.caption, frames[row.sha256]).verdict
    with receiver.store.begin() as conn:
        conn.execute(
            sa.update(GUESTS)
            .where(GUESTS.c.video_id == video_id)
            .values(
                visibility=verdict.visibility.value,
                reasons=_reasons(
                    verdict.visibility, verdict.rule, verdict.ground.value, verdict.signals
                ),
            )
        )
        apply_to_video(conn, video_id, row.domicile, verdict)
        log.append(
            conn,
            run_id=run_id,
            direction="received",
            origin=row.origin_cell,
            receiver=receiver.name,
            video_id=video_id,
            action="remoderated",
            nbytes=0,
            outcome=verdict.visibility.value,
        )
    return verdict.visibility.value
