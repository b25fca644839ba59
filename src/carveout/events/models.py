"""Interaction events: what a user did with a video, as the recommender consumes it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    IMPRESSION = "impression"
    WATCH = "watch"
    LIKE = "like"
    SHARE = "share"
    SKIP = "skip"
    COMMENT = "comment"


# Which video_stats counter each kind increments.
COUNTER = {
    EventKind.IMPRESSION: "impressions",
    EventKind.WATCH: "watches",
    EventKind.LIKE: "likes",
    EventKind.SHARE: "shares",
    EventKind.SKIP: "skips",
    EventKind.COMMENT: "comments",
}


@dataclass(frozen=True)
class EventIn:
    video_id: str
    kind: EventKind
    watched_ms: int | None = None
    occurred_at: int | None = None  # client time (Unix ms); server time when absent
