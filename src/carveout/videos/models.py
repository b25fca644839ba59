"""Videos as services see them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class VideoStatus(StrEnum):
    PROCESSING = "processing"
    PUBLISHED = "published"
    RESTRICTED = "restricted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Video:
    id: str
    domicile: str
    creator_id: str
    caption: str
    hashtags: list[str]
    category: str
    duration_ms: int
    width: int
    height: int
    blob_id: str
    status: str
    created_at: int
    origin_cell: str | None = None  # guest content: the cell this read-only copy came from

    @classmethod
    def from_row(cls, row: Any) -> Video:
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(
            id=m["id"],
            domicile=m["domicile"],
            creator_id=m["creator_id"],
            caption=m["caption"],
            hashtags=list(json.loads(m["hashtags"] or "[]")),
            category=m["category"],
            duration_ms=m["duration_ms"],
            width=m["width"],
            height=m["height"],
            blob_id=m["blob_id"],
            status=m["status"],
            created_at=m["created_at"],
            origin_cell=m.get("origin_cell"),
        )


@dataclass(frozen=True)
class NewVideo:
    caption: str
    hashtags: list[str]
    category: str


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    content_type: str
    size_bytes: int
