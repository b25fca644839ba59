"""Replay a write that met a carve's seal: it was in flight when the fence went up, so it waits
for the cutover to finish and runs again, now routed to the jurisdiction's new cell."""

from __future__ import annotations

import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carveout.cells import FenceBoard

MOVED_HEADER = b"x-carveout-moved"
REPLAY_MAX_BODY = 1 << 20  # bigger bodies (uploads) are not buffered: they get the 503 instead
WAIT_S = 10.0


class ReplayMoved:
    def __init__(self, app: ASGIApp, fences: FenceBoard) -> None:
        self.app = app
        self.fences = fences

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > REPLAY_MAX_BODY or not message.get("more_body", False):
                break
        replayable = size <= REPLAY_MAX_BODY

        def replaying() -> Receive:
            queue = list(messages)

            async def replay_receive() -> Message:
                if queue:
                    return queue.pop(0)
                return await receive()

            return replay_receive

        moved = False

        async def watch(message: Message) -> None:
            nonlocal moved
            if message["type"] == "http.response.start" and any(
                k == MOVED_HEADER for k, _ in message.get("headers", [])
            ):
                moved = True
            if not (moved and replayable):
                await send(message)

        await self.app(scope, replaying(), watch)
        if moved and replayable:
            # Wait for the cutover to release the fence, then run the request once more.
            await self._wait_clear()
            await self.app(scope, replaying(), send)

    async def _wait_clear(self) -> None:
        # On the event loop, not in a worker thread: see Gateway.hold_write.
        deadline = time.monotonic() + WAIT_S
        while self.fences.current() is not None and time.monotonic() < deadline:
            await anyio.sleep(0.002)
