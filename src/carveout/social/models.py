"""The social graph and public reactions: follows, likes, comments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Comment:
    id: str
    video_id: str
    user_id: str
    author_handle: str
    body: str
    created_at: int
    status: str = "visible"  # visible | restricted | hidden | removed (moderation decides)
    decision_id: str | None = None  # the statement of reasons, when moderation acted on it

    @classmethod
    def from_row(cls, row: Any) -> Comment:
        m = row._mapping
        return cls(
            m["id"],
            m["video_id"],
            m["user_id"],
            m["handle"],
            m["body"],
            m["created_at"],
            m["status"],
        )


@dataclass(frozen=True)
class ProfileCounts:
    followers: int
    following: int
    videos: int
