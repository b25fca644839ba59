"""Human review: user reports, creator appeals, the moderator queue and reviewer decisions.

Moderators are staff with the `moderator` role in this cell (carveout.accounts.staff). The
queue and statements of reasons about someone else's content name subjects and carry what
people wrote about them: moderators read them through the checked path, with a stated purpose
and an access-log entry per subject shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from carveout.accounts import User
from carveout.accounts.access_log import StaffRead, staff_read
from carveout.accounts.staff import Role, require_role
from carveout.cells import Cell
from carveout.core import Conflict, InvalidInput, NotFound, now_ms, parse_jurisdictions
from carveout.core.text import check_text
from carveout.datamap import TABLES
from carveout.moderation.decisions import (
    DECISIONS,
    REVIEWS,
    apply_to_comment,
    apply_to_video,
    decisions_for,
    decisions_on,
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
from carveout.moderation.service import served

VIDEOS = TABLES["videos"]
COMMENTS = TABLES["comments"]


@dataclass(frozen=True)
class ReviewItem:
    id: str
    domicile: str
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


def queue(cell: Cell, moderator: User, purpose: str | None, limit: int = 50) -> list[ReviewItem]:
    """Open items, oldest first: a moderator's staff read, logged once per subject shown."""

    def read(r: StaffRead) -> list[ReviewItem]:
        rows = r.conn.execute(
            sa.select(REVIEWS)
            .where(REVIEWS.c.status == "open")
            .order_by(REVIEWS.c.created_at, REVIEWS.c.id)
            .limit(max(1, min(limit, 200)))
        )
        items = [ReviewItem.from_row(x) for x in rows]
        _log_subjects(r, [(i.subject_id, i.domicile) for i in items], "review-queue item(s)")
        return items

    return staff_read(cell, moderator, (Role.MODERATOR,), purpose, read)


def _log_subjects(r: StaffRead, found: list[tuple[str, str]], what: str) -> None:
    """One entry per subject, in the subject's domicile (the row's own for an anonymised one,
    whose id is no longer an account)."""
    counts: dict[str, int] = {}
    for sid, _ in found:
        counts[sid] = counts.get(sid, 0) + 1
    domicile = {**{sid: dom for sid, dom in found}, **r.domiciles(list(counts))}
    for sid in sorted(counts):
        r.log(sid, domicile[sid], f"{counts[sid]} {what} about your content")


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
    require_role(cell, moderator, Role.MODERATOR)
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


def decisions_about(
    cell: Cell, user: User, target_id: str, purpose: str | None = None
) -> list[Decision]:
    """The statements of reasons about a piece of content of this cell: for its creator, and
    for moderators as a logged staff read (with a stated purpose). 404 when there are none."""
    found = decisions_for(cell.store, target_id)
    if not found:
        raise NotFound(f"no statements of reasons about {target_id} in this cell")
    if found[0].subject_id == user.id:
        return found

    def read(r: StaffRead) -> list[Decision]:
        again = decisions_on(r.conn, target_id)  # the read itself, in the logged transaction
        what = f"statement(s) of reasons on {found[0].target_kind} {target_id}"
        _log_subjects(r, [(d.subject_id, d.domicile) for d in again], what)
        return again

    return staff_read(cell, user, (Role.MODERATOR,), purpose, read)
