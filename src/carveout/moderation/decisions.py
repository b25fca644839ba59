"""Decisions stored with their statement of reasons, and applied to what the feed may serve."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.moderation.models import Decision, Source, TargetKind, Verdict, Visibility
from carveout.storage import Store

DECISIONS = TABLES["moderation_decisions"]
REVIEWS = TABLES["moderation_reviews"]
VIDEOS = TABLES["videos"]
COMMENTS = TABLES["comments"]
RESTRICTIONS = TABLES["video_restrictions"]
# Restrictions this package wrote carry this prefix, so a reversal removes only its own.
REASON_PREFIX = "moderation: "
VIDEO_STATUS = {
    Visibility.PUBLISHED: "published",
    Visibility.RESTRICTED: "published",  # published, with per-jurisdiction restriction rows
    Visibility.HELD: "processing",  # not served anywhere until a reviewer decides
    Visibility.REJECTED: "rejected",
}
COMMENT_STATUS = {
    Visibility.PUBLISHED: "visible",
    # shown, except where its decision's territorial scope says not (moderation.comments)
    Visibility.RESTRICTED: "restricted",
    Visibility.HELD: "hidden",
    Visibility.REJECTED: "removed",
}


def insert_decision(
    conn: sa.Connection,
    *,
    verdict: Verdict,
    domicile: str,
    subject_id: str,
    target_kind: TargetKind,
    target_id: str,
    content_date: int,
    source: Source,
    automated: bool,
    reviewer_id: str | None = None,
    supersedes: str | None = None,
) -> Decision:
    row: dict[str, Any] = {
        "id": new_id(),
        "domicile": domicile,
        "subject_id": subject_id,
        "target_kind": target_kind.value,
        "target_id": target_id,
        "visibility": verdict.visibility.value,
        "ground": verdict.ground.value,
        "rule": verdict.rule[:200],
        "category": verdict.category,
        "territorial_scope": json.dumps(list(verdict.territorial_scope)),
        "automated_detection": automated or source is Source.AUTOMATED,
        "automated_decision": automated,
        "source": source.value,
        "facts": verdict.facts,
        "signals": json.dumps(verdict.signals, sort_keys=True),
        "reviewer_id": reviewer_id,
        "supersedes": supersedes,
        "content_date": content_date,
        "created_at": now_ms(),
    }
    conn.execute(sa.insert(DECISIONS).values(**row))
    return Decision.from_row(
        conn.execute(sa.select(DECISIONS).where(DECISIONS.c.id == row["id"])).one()
    )


def apply_to_video(conn: sa.Connection, video_id: str, domicile: str, verdict: Verdict) -> None:
    """Make the feed follow the decision at once: status, and this package's restriction rows."""
    conn.execute(
        sa.update(VIDEOS)
        .where(VIDEOS.c.id == video_id)
        .values(status=VIDEO_STATUS[verdict.visibility])
    )
    conn.execute(
        sa.delete(RESTRICTIONS).where(
            RESTRICTIONS.c.video_id == video_id,
            RESTRICTIONS.c.reason.startswith(REASON_PREFIX, autoescape=True),
        )
    )
    if verdict.visibility is Visibility.RESTRICTED:
        now = now_ms()
        taken = {
            r.jurisdiction
            for r in conn.execute(
                sa.select(RESTRICTIONS.c.jurisdiction).where(RESTRICTIONS.c.video_id == video_id)
            )
        }
        rows = [
            {
                "id": new_id(),
                "domicile": domicile,
                "video_id": video_id,
                "jurisdiction": j,
                "reason": (REASON_PREFIX + verdict.rule)[:500],
                "created_at": now,
            }
            for j in verdict.territorial_scope
            if j not in taken
        ]
        if rows:
            conn.execute(sa.insert(RESTRICTIONS), rows)


def apply_to_comment(conn: sa.Connection, comment_id: str, verdict: Verdict) -> None:
    conn.execute(
        sa.update(COMMENTS)
        .where(COMMENTS.c.id == comment_id)
        .values(status=COMMENT_STATUS[verdict.visibility])
    )


def open_review(
    conn: sa.Connection,
    *,
    domicile: str,
    subject_id: str,
    origin: Source,
    target_kind: TargetKind,
    target_id: str,
    decision_id: str | None,
    filed_by: str | None,
    note: str,
) -> str:
    review_id = new_id()
    conn.execute(
        sa.insert(REVIEWS).values(
            id=review_id,
            domicile=domicile,
            subject_id=subject_id,
            origin=origin.value,
            target_kind=target_kind.value,
            target_id=target_id,
            decision_id=decision_id,
            filed_by=filed_by,
            note=note,
            status="open",
            outcome_id=None,
            created_at=now_ms(),
            closed_at=None,
        )
    )
    return review_id


def latest_decision(conn: sa.Connection, target_id: str) -> Decision | None:
    row = conn.execute(
        sa.select(DECISIONS)
        .where(DECISIONS.c.target_id == target_id)
        .order_by(DECISIONS.c.created_at.desc(), DECISIONS.c.id.desc())
        .limit(1)
    ).first()
    return Decision.from_row(row) if row is not None else None


def decisions_for(store: Store, target_id: str) -> list[Decision]:
    with store.connect() as conn:
        return decisions_on(conn, target_id)


def decisions_on(conn: sa.Connection, target_id: str) -> list[Decision]:
    rows = conn.execute(
        sa.select(DECISIONS)
        .where(DECISIONS.c.target_id == target_id)
        .order_by(DECISIONS.c.created_at, DECISIONS.c.id)
    )
    return [Decision.from_row(r) for r in rows]
