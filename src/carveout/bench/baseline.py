"""The baseline a user would write instead: a trivial FastAPI app served like carveout's.

`GET /ping` answers a small JSON object; `POST /echo` parses an event batch with carveout's own
request model and returns its size. Same framework, same validation, same server settings: what
carveout costs beyond them (authentication, routing to a cell, SQL) is what the ratio shows.
"""

from __future__ import annotations

from fastapi import FastAPI, status
from pydantic import BaseModel

from carveout.api.schemas import EventBatchIn, EventBatchOut


class PingOut(BaseModel):
    status: str


app = FastAPI(title="carveout bench baseline")


@app.get("/ping", response_model=PingOut)
def ping() -> PingOut:
    return PingOut(status="ok")


# A sync route like carveout's: both pay for the thread-pool hop, so it is not in the ratio.
@app.post("/echo", status_code=status.HTTP_202_ACCEPTED, response_model=EventBatchOut)
def echo(body: EventBatchIn) -> EventBatchOut:
    return EventBatchOut(accepted=len(body.events))
