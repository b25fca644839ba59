"""Comment screening: the cell's classifier and rules decide how a new comment is shown."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.core.text import check_text
from carveout.moderation.decisions import COMMENT_STATUS, DECISIONS, insert_decision, open_review
from carveout.moderation.models import Decision, Source, TargetKind, Verdict, Visibility
from carveout.moderation.service import screen_text


@dataclass(frozen=True)
class CommentScreening:
    verdict: Verdict
    status: str  # the comment's status: visible | restricted | hidden | removed


def screen_comment(cell: Cell, text: str) -> CommentScreening:
    """Classify a comment before it is stored. Control characters are refused as in captions;
    a score over an automatic threshold applies its rule, a score in a review band holds the
    comment for a human, anything else is shown."""
    check_text(text, "comment")
    verdict = screen_text(cell, text, "comment").verdict
    return CommentScreening(verdict, COMMENT_STATUS[verdict.visibility])


def record_comment_decision(
    conn: sa.Connection,
    screening: CommentScreening,
    *,
    comment_id: str,
    domicile: str,
    author_id: str,
    posted_at: int,
) -> Decision | None:
    """In the comment's own transaction: the statement of reasons of a comment that is not
    simply shown, and a review item when it is held. A clean comment gets no decision (a
    statement of reasons is owed for a restriction, and comments are many)."""
    verdict = screening.verdict
    if verdict.visibility is Visibility.PUBLISHED:
        return None
    decision = insert_decision(
        conn,
        verdict=verdict,
        domicile=domicile,
        subject_id=author_id,
        target_kind=TargetKind.COMMENT,
        target_id=comment_id,
        content_date=posted_at,
        source=Source.AUTOMATED,
        automated=True,
    )
    if verdict.visibility is Visibility.HELD:
        open_review(
            conn,
            domicile=domicile,
            subject_id=author_id,
            origin=Source.AUTOMATED,
            target_kind=TargetKind.COMMENT,
            target_id=comment_id,
            decision_id=decision.id,
            filed_by=None,
            note=verdict.facts[:1000],
        )
    return decision


def comment_restricted_in(comment_id: sa.ColumnElement[str], jurisdiction: str) -> sa.Exists:
    """SQL: the comment's standing decision restricts it in `jurisdiction` (a restricted
    comment is shown everywhere else)."""
    later = sa.alias(DECISIONS, "later")
    return sa.exists().where(
        DECISIONS.c.target_id == comment_id,
        DECISIONS.c.visibility == Visibility.RESTRICTED.value,
        DECISIONS.c.territorial_scope.contains(f'"{jurisdiction}"', autoescape=True),
        ~sa.exists().where(later.c.supersedes == DECISIONS.c.id),
    )
