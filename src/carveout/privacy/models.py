"""What privacy requests produce: erasure receipts, and the errors only privacy raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carveout.core import CarveoutError


class ErasureGone(CarveoutError):
    """The subject is already erased: there is nothing left to export or erase."""

    status = 410


@dataclass(frozen=True)
class ReceiptLine:
    store: str
    action: str
    records: int


@dataclass
class Receipt:
    """What an erasure did in each store, and what it kept and why. Holds ids, no personal
    data, so it can be kept as proof (and shown to the subject)."""

    request_id: str
    subject_id: str
    cell: str
    requested_by: str
    started_at: int
    lines: list[ReceiptLine]
    retained: list[ReceiptLine] = field(default_factory=list)
    # Empty when the subject erased their own account; a privacy officer states both.
    purpose: str = ""
    verification: str = ""
    backups: str = (
        "older backups and copies hold this user's personal fields only sealed under the "
        "destroyed key: unreadable; a restore re-applies this erasure from the key store's "
        "tombstone"
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "subject_id": self.subject_id,
            "cell": self.cell,
            "requested_by": self.requested_by,
            "purpose": self.purpose,
            "verification": self.verification,
            "started_at": self.started_at,
            "stores": [vars(line) for line in self.lines],
            "retained": [vars(line) for line in self.retained],
            "backups": self.backups,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        return cls(
            request_id=data["request_id"],
            subject_id=data["subject_id"],
            cell=data["cell"],
            requested_by=data["requested_by"],
            started_at=int(data["started_at"]),
            lines=[ReceiptLine(**line) for line in data["stores"]],
            retained=[ReceiptLine(**line) for line in data["retained"]],
            backups=data["backups"],
            # Receipts written before officers' requests existed have neither.
            purpose=data.get("purpose", ""),
            verification=data.get("verification", ""),
        )
