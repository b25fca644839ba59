"""Moderation routes: hash banks, reports, appeals, the review queue and statements of reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from carveout import moderation
from carveout.accounts import Role, require_role
from carveout.api.deps import CallerDep, PurposeDep

router = APIRouter(tags=["moderation"])


class BankIn(BaseModel):
    name: str = Field(max_length=64)
    jurisdiction: str = Field(max_length=2, description="whose rules it enforces")
    action: str = Field("reject", description="reject | hold | restrict (in its jurisdiction)")
    ground: str = Field("terms", description="illegal | terms")
    category: str = "STATEMENT_CATEGORY_NONE"
    description: str = Field("", max_length=500)


class BankOut(BaseModel):
    name: str
    jurisdiction: str
    action: str
    ground: str
    category: str
    description: str
    enabled: bool
    hashes: int

    @classmethod
    def of(cls, b: moderation.Bank) -> BankOut:
        return cls(
            name=b.name,
            jurisdiction=b.domicile,
            action=b.action.value,
            ground=b.ground.value,
            category=b.category,
            description=b.description,
            enabled=b.enabled,
            hashes=b.hashes,
        )


class BankPatch(BaseModel):
    enabled: bool


class HashListIn(BaseModel):
    text: str = Field(max_length=64 * 1024 * 1024, description="hash list, one hash a line")
    source: str = Field("", max_length=100)


class AddedOut(BaseModel):
    added: int
    bank: BankOut


class ReportIn(BaseModel):
    target_kind: str = Field(description="video | comment")
    target_id: str = Field(max_length=36)
    reason: str = Field(max_length=1000)


class AppealIn(BaseModel):
    statement: str = Field(max_length=1000)


class ReviewOut(BaseModel):
    id: str
    origin: str
    target_kind: str
    target_id: str
    decision_id: str | None
    note: str
    status: str
    created_at: int


class ResolveIn(BaseModel):
    visibility: str = Field(description="published | restricted | held | rejected")
    facts: str = Field(max_length=5000)
    rule: str = Field("", max_length=200)
    ground: str = Field("none", description="none | illegal | terms")
    category: str = "STATEMENT_CATEGORY_NONE"
    jurisdictions: list[str] = Field(default_factory=list, description="for restricted")


class DecisionOut(BaseModel):
    """A statement of reasons with the EU DSA transparency-database fields."""

    id: str
    target_kind: str
    target_id: str
    decision_visibility: str
    decision_ground: str
    rule: str
    category: str
    territorial_scope: list[str]
    automated_detection: bool
    automated_decision: bool
    source: str
    facts: str
    signals: dict[str, Any]
    supersedes: str | None
    content_date: int
    application_date: int

    @classmethod
    def of(cls, d: moderation.Decision) -> DecisionOut:
        return cls(
            id=d.id,
            target_kind=d.target_kind,
            target_id=d.target_id,
            decision_visibility=d.visibility,
            decision_ground=d.ground,
            rule=d.rule,
            category=d.category,
            territorial_scope=d.territorial_scope,
            automated_detection=d.automated_detection,
            automated_decision=d.automated_decision,
            source=d.source,
            facts=d.facts,
            signals=d.signals,
            supersedes=d.supersedes,
            content_date=d.content_date,
            application_date=d.created_at,
        )


def _review(item: moderation.ReviewItem) -> ReviewOut:
    return ReviewOut(
        id=item.id,
        origin=item.origin,
        target_kind=item.target_kind,
        target_id=item.target_id,
        decision_id=item.decision_id,
        note=item.note,
        status=item.status,
        created_at=item.created_at,
    )


@router.post("/moderation/banks", status_code=status.HTTP_201_CREATED, response_model=BankOut)
def create_bank(body: BankIn, caller: CallerDep) -> BankOut:
    """Create a hash bank in the caller's cell (moderators only)."""
    require_role(caller.cell, caller.user, Role.MODERATOR)
    return BankOut.of(moderation.create_bank(caller.cell.store, **body.model_dump()))


@router.get("/moderation/banks", response_model=list[BankOut])
def list_banks(caller: CallerDep) -> list[BankOut]:
    """The cell's hash banks with their enabled hash counts (moderators only)."""
    require_role(caller.cell, caller.user, Role.MODERATOR)
    return [BankOut.of(b) for b in moderation.list_banks(caller.cell.store)]


@router.patch("/moderation/banks/{name}", response_model=BankOut)
def patch_bank(name: str, body: BankPatch, caller: CallerDep) -> BankOut:
    """Enable or disable a bank; the next upload sees the change (moderators only)."""
    require_role(caller.cell, caller.user, Role.MODERATOR)
    return BankOut.of(moderation.set_enabled(caller.cell.store, name, body.enabled))


@router.post("/moderation/banks/{name}/hashes", response_model=AddedOut)
def add_hashes(name: str, body: HashListIn, caller: CallerDep) -> AddedOut:
    """Import a hash list (ThreatExchange text formats); all lines valid or nothing stored."""
    require_role(caller.cell, caller.user, Role.MODERATOR)
    entries = moderation.parse_hash_list(body.text, source=body.source)
    added = moderation.add_hashes(caller.cell.store, name, entries)
    return AddedOut(added=added, bank=BankOut.of(moderation.get_bank(caller.cell.store, name)))


@router.delete("/moderation/banks/{name}/hashes/{pdq}", status_code=status.HTTP_204_NO_CONTENT)
def disable_hash(name: str, pdq: str, caller: CallerDep) -> None:
    """Disable one hash of a bank (moderators only)."""
    require_role(caller.cell, caller.user, Role.MODERATOR)
    moderation.disable_hash(caller.cell.store, name, moderation.parse_hex(pdq))


@router.post("/reports", status_code=status.HTTP_201_CREATED, response_model=ReviewOut)
def report(body: ReportIn, caller: CallerDep) -> ReviewOut:
    """Report a video or comment; it joins the cell's review queue."""
    return _review(
        moderation.report(caller.cell, caller.user, body.target_kind, body.target_id, body.reason)
    )


@router.get("/videos/{video_id}/decisions", response_model=list[DecisionOut])
def decisions(video_id: str, caller: CallerDep, purpose: PurposeDep) -> list[DecisionOut]:
    """Statements of reasons about a video, oldest first (its creator; moderators state a
    purpose and are logged)."""
    found = moderation.decisions_about(caller.cell, caller.user, video_id, purpose)
    return [DecisionOut.of(d) for d in found]


@router.get("/comments/{comment_id}/decisions", response_model=list[DecisionOut])
def comment_decisions(comment_id: str, caller: CallerDep) -> list[DecisionOut]:
    """Statements of reasons about a comment, oldest first (its author and moderators)."""
    found = moderation.decisions_about(caller.cell, caller.user, comment_id)
    return [DecisionOut.of(d) for d in found]


@router.post(
    "/moderation/decisions/{decision_id}/appeal",
    status_code=status.HTTP_201_CREATED,
    response_model=ReviewOut,
)
def appeal(decision_id: str, body: AppealIn, caller: CallerDep) -> ReviewOut:
    """The creator appeals a decision about their content."""
    return _review(moderation.appeal(caller.cell, caller.user, decision_id, body.statement))


@router.get("/moderation/queue", response_model=list[ReviewOut])
def review_queue(
    caller: CallerDep, purpose: PurposeDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[ReviewOut]:
    """Open review items of the caller's cell, oldest first (moderators, with a stated
    purpose; one access-log entry per subject shown)."""
    return [_review(i) for i in moderation.queue(caller.cell, caller.user, purpose, limit)]


@router.post("/moderation/queue/{review_id}/decision", response_model=DecisionOut)
def resolve(review_id: str, body: ResolveIn, caller: CallerDep) -> DecisionOut:
    """A reviewer confirms or reverses; feeds follow at once (moderators only)."""
    decision = moderation.resolve(caller.cell, caller.user, review_id, **body.model_dump())
    return DecisionOut.of(decision)
