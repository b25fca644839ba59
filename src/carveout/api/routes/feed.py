"""Interaction events, the For You feed, trending."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from carveout import events, recommend
from carveout.api.deps import CallerDep, GatewayDep
from carveout.api.schemas import EventBatchIn, EventBatchOut, FeedItemOut, PageOut

router = APIRouter(tags=["feed"])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("/events", status_code=status.HTTP_202_ACCEPTED, response_model=EventBatchOut)
def ingest(body: EventBatchIn, caller: CallerDep) -> EventBatchOut:
    """A batch of the caller's interaction events (at most 500): all stored, or none."""
    batch = [
        events.EventIn(
            video_id=e.video_id,
            kind=events.EventKind(e.kind),
            watched_ms=e.watched_ms,
            occurred_at=e.occurred_at,
        )
        for e in body.events
    ]
    return EventBatchOut(accepted=events.record(caller.cell.store, caller.user, batch))


@router.get("/feed", response_model=PageOut[FeedItemOut])
def feed(
    caller: CallerDep, gateway: GatewayDep, cursor: str | None = None, limit: Limit = 10
) -> PageOut[FeedItemOut]:
    """The caller's For You feed from their cell's model (popularity until it has one)."""
    page = recommend.for_you(
        caller.cell, caller.user, cursor, limit, policy=gateway.deployment.policy
    )
    return PageOut(items=[FeedItemOut.of(i) for i in page.items], next_cursor=page.next_cursor)


@router.get("/trending", response_model=PageOut[FeedItemOut])
def trending(
    caller: CallerDep, cursor: str | None = None, limit: Limit = 10
) -> PageOut[FeedItemOut]:
    """Most engagement in the caller's cell over the last 24 hours."""
    page = recommend.trending(caller.cell.store, caller.user, cursor, limit)
    return PageOut(items=[FeedItemOut.of(i) for i in page.items], next_cursor=page.next_cursor)
