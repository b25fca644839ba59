"""Human review: user reports, creator appeals, the moderator queue and reviewer decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from carveout.accounts import User
from carveout.cells import Cell
from carveout.core import Conflict, Forbidden, InvalidInput, NotFound, now_ms, parse_jurisdictions
from carveout.datamap import TABLES
from carveout.moderation.decisions import (
    DECISIONS,
    REVIEWS,
    apply_to_comment,
    apply_to_video,
    decisions_for,
    insert_decision,
    latest_decision,
    open_review,
)
from carveout.moderation.models import (
    CATEGORIES,
    Decision,
    Ground,
    Source,
    TargetKind,
    Verdict,
    Visibility,
)
from carveout.moderation.rules import load_rules
from carveout.moderation.service import check_text, served

VIDEOS = TABLES["videos"]
COMMENTS = TABLES["comments"]


@dataclass(frozen=True)
class ReviewItem:
    id: str
    origin: str
    target_kind: str
    target_id: str
    subject_id: str
    decision_id: str | None
    filed_by: str | None
    note: str
    status: str
    outcome_id: str | None
    created_at: int

    @classmethod
    def from_row(cls, row: Any) -> ReviewItem:
        return cls(**{k: getattr(row, k) for k in cls.__dataclass_fields__})


def require_moderator(cell: Cell, user: User) -> None:
    """Minimal role check until staff roles exist: the cell's rules file lists moderators."""
    if user.id not in load_rules(cell.root).moderators:
        raise Forbidden("only moderators of this cell may do this")


def _target(conn: sa.Connection, kind: TargetKind, target_id: str) -> tuple[str, str, int]:
    """(domicile, creator id, posted at) of a video or comment in this cell."""
    table, owner = (
        (VIDEOS, VIDEOS.c.creator_id)
        if kind is TargetKind.VIDEO
        else (
            COMMENTS,
            COMMENTS.c.user_id,
        )
    )
    row = conn.execute(
        sa.select(table.c.domicile, owner.label("owner"), table.c.created_at).where(
            table.c.id == target_id
        )
    ).first()
    if row is None:
        raise NotFound(f"no {kind.value} {target_id}")
    return row.domicile, row.owner, row.created_at


def _note(text: str) -> str:
    check_text(text, "reason")
    if len(text) > 1000:
        raise InvalidInput("reason longer than 1000 characters")
    return text.strip()


def report(cell: Cell, reporter: User, kind: str, target_id: str, reason: str) -> ReviewItem:
    """A user's notice about a video or comment; one open report per user and target."""
    try:
        target_kind = TargetKind(kind)
    except ValueError as exc:
        raise InvalidInput("target_kind is video or comment") from exc
    note = _note(reason)
    with cell.store.begin() as conn:
        domicile, owner, _ = _target(conn, target_kind, target_id)
        dup = conn.execute(
            sa.select(REVIEWS.c.id).where(
                REVIEWS.c.target_id == target_id,
                REVIEWS.c.filed_by == reporter.id,
                REVIEWS.c.status == "open",
            )
        ).first()
        if dup is not None:
            raise Conflict("you already reported this; it is waiting for review")
        review_id = open_review(
            conn,
            domicile=domicile,
            subject_id=owner,
            origin=Source.REPORT,
            target_kind=target_kind,
            target_id=target_id,
            decision_id=None,
            filed_by=reporter.id,
            note=note,
        )
    return get_item(cell, review_id)


def appeal(cell: Cell, creator: User, decision_id: str, statement: str) -> ReviewItem:
    """The creator contests a decision about their content; a reviewer then decides."""
    note = _note(statement)
    with cell.store.begin() as conn:
        row = conn.execute(sa.select(DECISIONS).where(DECISIONS.c.id == decision_id)).first()
        if row is None or row.subject_id != creator.id:
            raise NotFound(f"no decision {decision_id} about your content")
        if row.visibility == Visibility.PUBLISHED.value:
            raise InvalidInput("nothing to appeal: the decision published the content")
        open_item = conn.execute(
            sa.select(REVIEWS.c.id).where(
                REVIEWS.c.decision_id == decision_id,
                REVIEWS.c.origin == Source.APPEAL.value,
                REVIEWS.c.status == "open",
            )
        ).first()
        if open_item is not None:
            raise Conflict("this decision is already under appeal")
        review_id = open_review(
            conn,
            domicile=row.domicile,
            subject_id=creator.id,
            origin=Source.APPEAL,
            target_kind=TargetKind(row.target_kind),
            target_id=row.target_id,
            decision_id=decision_id,
            filed_by=creator.id,
            note=note,
        )
    return get_item(cell, review_id)


def get_item(cell: Cell, review_id: str) -> ReviewItem:
    with cell.store.connect() as conn:
        row = conn.execute(sa.select(REVIEWS).where(REVIEWS.c.id == review_id)).first()
    if row is None:
        raise NotFound(f"no review item {review_id}")
    return ReviewItem.from_row(row)


def queue(cell: Cell, moderator: User, limit: int = 50) -> list[ReviewItem]:
    """Open items, oldest first."""
    require_moderator(cell, moderator)
    with cell.store.connect() as conn:
        rows = conn.execute(
            sa.select(REVIEWS)
            .where(REVIEWS.c.status == "open")
            .order_by(REVIEWS.c.created_at, REVIEWS.c.id)
            .limit(max(1, min(limit, 200)))
        )
        return [ReviewItem.from_row(r) for r in rows]


def resolve(
    cell: Cell,
    moderator: User,
    review_id: str,
    *,
    visibility: str,
    facts: str,
    rule: str = "",
    ground: str = "none",
    category: str = "STATEMENT_CATEGORY_NONE",
    jurisdictions: list[str] | None = None,
) -> Decision:
    """A reviewer's decision on the item's content: it supersedes the latest decision, takes
    effect in feeds in the same transaction and closes every open item about that content."""
    require_moderator(cell, moderator)
    try:
        vis, gr = Visibility(visibility), Ground(ground)
    except ValueError as exc:
        raise InvalidInput(f"{exc}") from exc
    if category not in CATEGORIES:
        raise InvalidInput(f"unknown DSA category {category!r}")
    if vis is not Visibility.PUBLISHED and (gr is Ground.NONE or not rule.strip()):
        raise InvalidInput("a decision against content names its ground and rule")
    if vis is Visibility.RESTRICTED:
        scope = tuple(parse_jurisdictions(jurisdictions or []))
        if not scope:
            raise InvalidInput("a restriction names the jurisdictions it applies in")
    else:
        scope = served(cell)
    check_text(facts, "facts")
    check_text(rule, "rule")
    verdict = Verdict(vis, gr, rule.strip(), category, scope, facts.strip() or "reviewed")
    with cell.store.begin() as conn:
        item = conn.execute(sa.select(REVIEWS).where(REVIEWS.c.id == review_id)).first()
        if item is None:
            raise NotFound(f"no review item {review_id}")
        if item.status != "open":
            raise Conflict(f"review item {review_id} is already closed")
        kind = TargetKind(item.target_kind)
        domicile, owner, posted = _target(conn, kind, item.target_id)
        previous = latest_decision(conn, item.target_id)
        decision = insert_decision(
            conn,
            verdict=verdict,
            domicile=domicile,
            subject_id=owner,
            target_kind=kind,
            target_id=item.target_id,
            content_date=posted,
            source=Source(item.origin) if item.origin != "automated" else Source.REVIEWER,
            automated=False,
            reviewer_id=moderator.id,
            supersedes=previous.id if previous is not None else None,
        )
        if kind is TargetKind.VIDEO:
            apply_to_video(conn, item.target_id, domicile, verdict)
        else:
            apply_to_comment(conn, item.target_id, verdict)
        conn.execute(
            sa.update(REVIEWS)
            .where(REVIEWS.c.target_id == item.target_id, REVIEWS.c.status == "open")
            .values(status="closed", outcome_id=decision.id, closed_at=now_ms())
        )
    return decision


def decisions_about(cell: Cell, user: User, target_id: str) -> list[Decision]:
    """The statements of reasons about a piece of content: for its creator and moderators."""
    found = decisions_for(cell.store, target_id)
    if found and found[0].subject_id != user.id:
        require_moderator(cell, user)
    return found
