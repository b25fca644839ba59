"""Follow, like, comment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from carveout import social
from carveout.api.deps import CallerDep
from carveout.api.schemas import ChangedOut, CommentIn, CommentOut, PageOut, PublicUserOut

router = APIRouter(tags=["social"])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.put("/users/{user_id}/follow", response_model=ChangedOut)
def follow(user_id: str, caller: CallerDep) -> ChangedOut:
    """Follow a user (idempotent: `changed` is false when already following)."""
    return ChangedOut(changed=social.follow(caller.cell.store, caller.user, user_id))


@router.delete("/users/{user_id}/follow", response_model=ChangedOut)
def unfollow(user_id: str, caller: CallerDep) -> ChangedOut:
    """Stop following a user (idempotent)."""
    return ChangedOut(changed=social.unfollow(caller.cell.store, caller.user, user_id))


@router.get("/users/{user_id}/followers", response_model=PageOut[PublicUserOut])
def followers(
    user_id: str, caller: CallerDep, cursor: str | None = None, limit: Limit = 20
) -> PageOut[PublicUserOut]:
    """Who follows this user, most recent first."""
    page = social.followers(caller.cell, user_id, cursor, limit)
    return PageOut(items=[PublicUserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.get("/users/{user_id}/following", response_model=PageOut[PublicUserOut])
def following(
    user_id: str, caller: CallerDep, cursor: str | None = None, limit: Limit = 20
) -> PageOut[PublicUserOut]:
    """Whom this user follows, most recent first."""
    page = social.following(caller.cell, user_id, cursor, limit)
    return PageOut(items=[PublicUserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.put("/videos/{video_id}/like", response_model=ChangedOut)
def like(video_id: str, caller: CallerDep) -> ChangedOut:
    """Like a video (idempotent)."""
    return ChangedOut(changed=social.like(caller.cell.store, caller.user, video_id))


@router.delete("/videos/{video_id}/like", response_model=ChangedOut)
def unlike(video_id: str, caller: CallerDep) -> ChangedOut:
    """Take a like back (idempotent)."""
    return ChangedOut(changed=social.unlike(caller.cell.store, caller.user, video_id))


@router.post(
    "/videos/{video_id}/comments", status_code=status.HTTP_201_CREATED, response_model=CommentOut
)
def comment(video_id: str, body: CommentIn, caller: CallerDep) -> CommentOut:
    """Comment on a video; text moderation decides first whether it is shown (`status`)."""
    return CommentOut.of(social.add_comment(caller.cell, caller.user, video_id, body.body))


@router.get("/videos/{video_id}/comments", response_model=PageOut[CommentOut])
def comments(
    video_id: str, caller: CallerDep, cursor: str | None = None, limit: Limit = 20
) -> PageOut[CommentOut]:
    """A video's comments the caller may see, oldest first."""
    page = social.comments(caller.cell, caller.user, video_id, cursor, limit)
    return PageOut(items=[CommentOut.of(c) for c in page.items], next_cursor=page.next_cursor)


@router.delete("/comments/{comment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_comment(comment_id: str, caller: CallerDep) -> None:
    """Remove one of your own comments."""
    social.delete_comment(caller.cell.store, caller.user, comment_id)
