"""The social graph and public reactions: follows, likes, comments."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class ProfileCounts:
    followers: int
    following: int
    videos: int
