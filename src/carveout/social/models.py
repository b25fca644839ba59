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


@dataclass(frozen=True)
class ProfileCounts:
    followers: int
    following: int
    videos: int
