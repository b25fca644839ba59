"""The FastAPI application: /v1 routes over a deployment of cells, errors mapped to 4xx."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from carveout import __version__
from carveout.api.housekeeping import lifespan
from carveout.api.limits import BodyLimit
from carveout.api.replay import MOVED_HEADER, ReplayMoved
from carveout.api.routes import accounts, feed, moderation, privacy, social, staff, videos
from carveout.api.warmup import rehearse_writes
from carveout.carve import is_moved_error
from carveout.cells import Deployment, Gateway
from carveout.core import CarveoutError, Unauthenticated

DEFAULT_MAX_BODY = 256 * 1024 * 1024


class HealthOut(BaseModel):
    status: str
    version: str
    cells: dict[str, list[str]]


def create_app(
    deployment: Deployment,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    housekeeping: bool = False,
) -> FastAPI:
    app = FastAPI(
        lifespan=lifespan(deployment) if housekeeping else None,
        title="carveout",
        version=__version__,
        summary="A short-video backend in which every record knows its jurisdiction.",
    )
    gateway = Gateway(deployment, warm=rehearse_writes)
    app.state.gateway = gateway
    # Outermost last: the body limit applies before a body is buffered for a replay.
    app.add_middleware(ReplayMoved, fences=gateway.fences)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(CarveoutError)
    async def domain_error(_request: Request, exc: CarveoutError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(sa.exc.DBAPIError)
    async def database_error(_request: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
        if is_moved_error(exc):
            # The write met a carve's seal: ReplayMoved runs it again after the cutover.
            return JSONResponse(
                {"detail": "your jurisdiction moved to a new cell during this request; retry"},
                status_code=503,
                headers={MOVED_HEADER.decode(): "1", "Retry-After": "1"},
            )
        raise exc

    @app.get("/v1/health", response_model=HealthOut, tags=["operations"])
    def health() -> HealthOut:
        """Liveness, and which jurisdictions each cell serves ('*': every other one)."""
        cells = {
            s.name: list(s.jurisdictions) + (["*"] if s.serves_rest else [])
            for s in deployment.policy.cells
        }
        return HealthOut(status="ok", version=__version__, cells=cells)

    for module in (accounts, videos, social, feed, moderation, privacy, staff):
        app.include_router(module.router, prefix="/v1")
    return app
