"""Staff routes: a privacy officer's account reads and verified erasures, receipts, and the
auditor's view of the access log. Every read of personal data states its purpose in the
X-Access-Purpose header and is logged by the checked path (carveout.accounts.access_log)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from carveout import accounts, privacy
from carveout.api.deps import CallerDep, PurposeDep
from carveout.api.schemas_privacy import ReceiptOut
from carveout.api.schemas_staff import (
    AccessEntryOut,
    AccessLogOut,
    ChainHeadOut,
    ChainOut,
    ChainProblemOut,
    ErasureIn,
    StaffUserOut,
)

router = APIRouter(prefix="/staff", tags=["staff"])


@router.get("/users/{user_id}", response_model=StaffUserOut)
def read_user(user_id: str, caller: CallerDep, purpose: PurposeDep) -> StaffUserOut:
    """A user's account with its private fields (privacy officers; logged with the purpose)."""
    user = accounts.read_account(caller.cell, caller.user, user_id, purpose)
    return StaffUserOut.of_cell(user, caller.cell.name)


@router.post("/erasures", status_code=status.HTTP_201_CREATED, response_model=ReceiptOut)
def erase_user(body: ErasureIn, caller: CallerDep) -> ReceiptOut:
    """Erase a user on a verified request (privacy officers); returns the receipt."""
    receipt = privacy.erase_verified(
        caller.cell, caller.user, body.user_id, body.purpose, body.verification
    )
    return ReceiptOut.of(receipt)


@router.get("/erasures/{request_id}", response_model=ReceiptOut)
def erasure_receipt(request_id: str, caller: CallerDep, purpose: PurposeDep) -> ReceiptOut:
    """An erasure's receipt (privacy officers and auditors; logged with the purpose)."""
    return ReceiptOut.of(privacy.erasure_receipt(caller.cell, caller.user, request_id, purpose))


@router.get("/access-log", response_model=AccessLogOut)
def access_log(
    caller: CallerDep,
    purpose: PurposeDep,
    subject_id: Annotated[str | None, Query(max_length=36)] = None,
    jurisdiction: Annotated[str | None, Query(max_length=2)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> AccessLogOut:
    """The cell's staff access log, newest first, and whether its chains are intact (auditors;
    reading it is itself logged)."""
    seen = accounts.audit(
        caller.cell,
        caller.user,
        purpose,
        subject_id=subject_id,
        jurisdiction=jurisdiction,
        cursor=cursor,
        limit=limit,
    )
    chain = ChainOut(
        intact=not seen.problems,
        problems=[ChainProblemOut.of(p) for p in seen.problems],
        heads=[ChainHeadOut.of(h) for h in seen.heads],
    )
    return AccessLogOut(
        items=[AccessEntryOut.of(e) for e in seen.page.items],
        next_cursor=seen.page.next_cursor,
        chain=chain,
    )
