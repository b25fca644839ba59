"""Request and response bodies of the HTTP API, kept apart from the domain types."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from carveout.accounts import User
from carveout.recommend import FeedItem
from carveout.social import Comment, ProfileCounts
from carveout.videos import Video

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUpIn(Strict):
    handle: str = Field(examples=["maple_maker"])
    display_name: str = Field(examples=["Maple Maker"])
    email: str = Field(examples=["maple@example.com"])
    password: str = Field(min_length=8, max_length=256)
    birth_year: int | None = Field(default=None, examples=[1998])
    country: str = Field(
        description="ISO 3166-1 alpha-2; decides the user's domicile and cell", examples=["CA"]
    )


class LoginIn(Strict):
    login: str = Field(description="handle or email")
    password: str


class ProfilePatch(Strict):
    display_name: str | None = None
    birth_year: int | None = None


class PublicUserOut(BaseModel):
    id: str
    handle: str
    display_name: str

    @classmethod
    def of(cls, user: User) -> PublicUserOut:
        return cls(id=user.id, handle=user.handle, display_name=user.display_name)


class ProfileOut(PublicUserOut):
    followers: int
    following: int
    videos: int

    @classmethod
    def with_counts(cls, user: User, counts: ProfileCounts) -> ProfileOut:
        return cls(
            id=user.id,
            handle=user.handle,
            display_name=user.display_name,
            followers=counts.followers,
            following=counts.following,
            videos=counts.videos,
        )


class MeOut(PublicUserOut):
    email: str
    birth_year: int | None
    domicile: str
    cell: str

    @classmethod
    def of_cell(cls, user: User, cell: str) -> MeOut:
        return cls(
            id=user.id,
            handle=user.handle,
            display_name=user.display_name,
            email=user.email,
            birth_year=user.birth_year,
            domicile=user.domicile,
            cell=cell,
        )


class SessionOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type name
    expires_at: int
    user: MeOut


class VideoOut(BaseModel):
    id: str
    creator_id: str
    caption: str
    hashtags: list[str]
    category: str
    duration_ms: int
    width: int
    height: int
    status: str
    domicile: str
    created_at: int
    media_url: str
    guest_of: str | None = Field(
        None,
        description="guest content: the cell this read-only copy came from (content exchange); "
        "null for the cell's own videos",
    )
    creator_handle: str | None = Field(
        None, description="guest content: the foreign creator's public handle"
    )

    @classmethod
    def of(cls, video: Video, creator_handle: str | None = None) -> VideoOut:
        return cls(
            id=video.id,
            creator_id=video.creator_id,
            caption=video.caption,
            hashtags=video.hashtags,
            category=video.category,
            duration_ms=video.duration_ms,
            width=video.width,
            height=video.height,
            status=video.status,
            domicile=video.domicile,
            created_at=video.created_at,
            media_url=f"/v1/videos/{video.id}/media",
            guest_of=video.origin_cell,
            creator_handle=creator_handle,
        )


class FeedItemOut(BaseModel):
    video: VideoOut
    source: str = Field(description="the candidate source that chose this video")
    score: float

    @classmethod
    def of(cls, item: FeedItem) -> FeedItemOut:
        return cls(video=VideoOut.of(item.video), source=item.source, score=item.score)


class CommentIn(Strict):
    body: str = Field(max_length=10_000)


class CommentOut(BaseModel):
    id: str
    video_id: str
    user_id: str
    author_handle: str
    body: str
    created_at: int
    status: str = Field(
        description="visible | restricted (not shown in the decision's jurisdictions) | hidden "
        "(held for review: shown to its author only) | removed"
    )
    decision_id: str | None = Field(
        default=None, description="the statement of reasons, when moderation acted on posting"
    )

    @classmethod
    def of(cls, c: Comment) -> CommentOut:
        return cls(
            id=c.id,
            video_id=c.video_id,
            user_id=c.user_id,
            author_handle=c.author_handle,
            body=c.body,
            created_at=c.created_at,
            status=c.status,
            decision_id=c.decision_id,
        )


class EventBody(Strict):
    video_id: str
    kind: Literal["impression", "watch", "like", "share", "skip", "comment"]
    watched_ms: int | None = Field(default=None, ge=0)
    occurred_at: int | None = Field(default=None, description="client time, Unix ms")


class EventBatchIn(Strict):
    events: list[EventBody] = Field(max_length=500)


class EventBatchOut(BaseModel):
    accepted: int


class ChangedOut(BaseModel):
    changed: bool


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
