"""Request and response bodies of the privacy routes: exports, erasure receipts, consent."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from carveout.accounts.consent import ConsentState
from carveout.privacy import Receipt


class ExportOut(BaseModel):
    id: str
    status: str = Field(description="running | done | failed")
    archive: str | None = Field(description="where to download the zip once done")


class ReceiptLineOut(BaseModel):
    store: str
    action: str
    records: int


class ReceiptOut(BaseModel):
    request_id: str
    subject_id: str
    cell: str
    requested_by: str
    purpose: str = Field(description="a privacy officer's stated purpose; empty for the subject")
    verification: str = Field(description="how an officer verified the request; else empty")
    started_at: int
    stores: list[ReceiptLineOut]
    retained: list[ReceiptLineOut]
    backups: str

    @classmethod
    def of(cls, receipt: Receipt) -> ReceiptOut:
        return cls.model_validate(receipt.to_json())


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    granted: bool
    version: str = Field(min_length=1, max_length=32, examples=["2026-11"])


class ConsentOut(BaseModel):
    purpose: str
    granted: bool
    version: str = Field(description='notice version, or "default" if never answered')
    at: int | None

    @classmethod
    def of(cls, state: ConsentState) -> ConsentOut:
        return cls(purpose=state.purpose, granted=state.granted, version=state.version, at=state.at)
