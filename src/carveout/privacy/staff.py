"""A privacy officer's side of erasure: verified requests and their receipts, each a checked
staff access (carveout.accounts.access_log), logged with its stated purpose."""

from __future__ import annotations

import json

import sqlalchemy as sa

from carveout.accounts import User
from carveout.accounts.access_log import StaffRead, staff_read
from carveout.accounts.staff import Role
from carveout.cells import Cell
from carveout.core import Conflict, InvalidInput, NotFound
from carveout.core.text import check_text
from carveout.privacy.erasure import REQUESTS, claim_erasure, run_erasure
from carveout.privacy.models import Receipt

MAX_VERIFICATION = 500


def _verification(text: str) -> str:
    stated = text.strip()
    if not 1 <= len(stated) <= MAX_VERIFICATION:
        raise InvalidInput(
            f"say how the request was verified (1-{MAX_VERIFICATION} characters), e.g. "
            "'identity confirmed by a signed message from the account's email, ticket 4711'"
        )
    return check_text(stated, "verification")


def erase_verified(
    cell: Cell, officer: User, user_id: str, purpose: str | None, verification: str
) -> Receipt:
    """Erase an account of this cell on a request the officer verified. The claim commits with
    its access-log entry; the erasure then runs (and resumes after a crash) like the subject's
    own. 409 while another erasure of them runs, 410 once they are erased."""

    def claim(r: StaffRead) -> str:
        how = _verification(verification)  # checked after the role: a 403 tells no more
        r.subject(user_id, "your account, to erase it on your verified request")
        return claim_erasure(r.conn, user_id, officer.id, r.purpose, how)

    request_id = staff_read(cell, officer, (Role.PRIVACY_OFFICER,), purpose, claim)
    return run_erasure(cell, request_id)


def erasure_receipt(cell: Cell, staff: User, request_id: str, purpose: str | None) -> Receipt:
    """An erasure's receipt, for privacy officers and auditors (a logged read: it names the
    subject). 404 for an unknown request or one of another cell; 409 while it runs."""

    def read(r: StaffRead) -> Receipt:
        row = r.conn.execute(
            sa.select(REQUESTS).where(REQUESTS.c.id == request_id, REQUESTS.c.kind == "erasure")
        ).first()
        if row is None:
            raise NotFound(f"no erasure request {request_id}")
        if row.status != "done" or row.receipt is None:
            raise Conflict(f"erasure {request_id} is {row.status}: no receipt yet")
        r.log(row.user_id, row.domicile, f"the receipt of your erasure ({request_id})")
        return Receipt.from_json(json.loads(row.receipt))

    roles = (Role.PRIVACY_OFFICER, Role.AUDITOR)
    return staff_read(cell, staff, roles, purpose, read)
