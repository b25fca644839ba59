"""The subject's own privacy rights: access exports, erasure, consent."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, status
from fastapi.responses import FileResponse

from carveout import privacy
from carveout.accounts import consent
from carveout.api.deps import CallerDep
from carveout.api.schemas_privacy import ConsentIn, ConsentOut, ExportOut, ReceiptOut
from carveout.core import Conflict
from carveout.recommend.service import describe_user

router = APIRouter(tags=["privacy"])


def _export_out(request_id: str, state: str) -> ExportOut:
    ready = f"/v1/me/exports/{request_id}/archive" if state == "done" else None
    return ExportOut(id=request_id, status=state, archive=ready)


@router.post("/me/exports", status_code=status.HTTP_202_ACCEPTED, response_model=ExportOut)
def start_export(caller: CallerDep, tasks: BackgroundTasks) -> ExportOut:
    """Start an access export of everything held about the caller (GDPR Art. 15/20)."""
    request_id = privacy.start_export(caller.cell, caller.user)
    tasks.add_task(privacy.run_export, caller.cell, caller.user, request_id, describe_user)
    return _export_out(request_id, "running")


@router.get("/me/exports/{request_id}", response_model=ExportOut)
def export_state(request_id: str, caller: CallerDep) -> ExportOut:
    """Where one of the caller's exports stands."""
    state, _path = privacy.export_status(caller.cell, caller.user, request_id)
    return _export_out(request_id, state)


@router.get(
    "/me/exports/{request_id}/archive",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def export_archive(request_id: str, caller: CallerDep) -> FileResponse:
    """The export's zip: JSON per table, the recommender's inferences, media, a summary."""
    state, path = privacy.export_status(caller.cell, caller.user, request_id)
    if path is None or not path.is_file():
        raise Conflict(f"export {request_id} is {state}, not ready to download")
    return FileResponse(path, media_type="application/zip", filename=f"carveout-{request_id}.zip")


@router.delete("/me", response_model=ReceiptOut)
def erase_me(caller: CallerDep) -> ReceiptOut:
    """Erase the caller's account and data in every store; returns the receipt."""
    receipt = privacy.erase(caller.cell, caller.user.id, requested_by=caller.user.id)
    return ReceiptOut.of(receipt)


@router.get("/me/consents", response_model=list[ConsentOut])
def consents(caller: CallerDep) -> list[ConsentOut]:
    """The caller's consent in force per purpose (personalisation, training)."""
    return [ConsentOut.of(s) for s in consent.current(caller.cell.store, caller.user.id).values()]


@router.put("/me/consents/{purpose}", response_model=ConsentOut)
def set_consent(purpose: str, body: ConsentIn, caller: CallerDep) -> ConsentOut:
    """Give or withdraw consent for a purpose; takes effect at the next request."""
    state = consent.record(caller.cell.store, caller.user, purpose, body.granted, body.version)
    return ConsentOut.of(state)
