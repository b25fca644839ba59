"""The content exchange as its callers see it: what a sync did, and why it refused."""

from __future__ import annotations

from dataclasses import dataclass, field

from carveout.core import CarveoutError


class ExchangeRefused(CarveoutError):
    """The residency policy does not allow this exchange (or names no such cell)."""

    status = 403


@dataclass(frozen=True)
class OriginVideo:
    """The public fields of a video its origin cell offers; nothing else crosses."""

    id: str
    domicile: str
    creator_pseudonym: str  # keyed by the origin's secret: does not resolve outside it
    creator_handle: str
    caption: str
    hashtags: str  # JSON list, as stored
    category: str
    duration_ms: int
    width: int
    height: int
    sha256: str
    content_type: str
    size_bytes: int


@dataclass
class SyncReport:
    origin: str
    receiver: str
    run_id: str
    offered: int = 0
    copied: dict[str, int] = field(default_factory=dict)  # visibility -> guest copies written
    bytes: int = 0  # media bytes moved (a file the receiver already has moves once)
    kept: int = 0  # guest copies the origin still publishes
    remoderated: int = 0
    withdrawn: dict[str, int] = field(default_factory=dict)  # reason -> guest copies removed
    failures: list[str] = field(default_factory=list)  # "video id: reason"

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class LogEntry:
    seq: int
    run_id: str
    direction: str
    origin_cell: str
    receiving_cell: str
    video_id: str
    action: str
    bytes: int
    outcome: str
    created_at: int
