"""Upload videos, read their metadata, stream their media with range requests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.responses import FileResponse

from carveout import exchange, moderation, videos
from carveout.api.deps import CallerDep
from carveout.api.schemas import PageOut, VideoOut
from carveout.core import InvalidInput

router = APIRouter(tags=["videos"])


@router.post("/videos", status_code=status.HTTP_201_CREATED, response_model=VideoOut)
def upload(
    caller: CallerDep,
    file: Annotated[UploadFile, File(description="MP4 or WebM; H.264, HEVC, VP8, VP9 or AV1")],
    caption: Annotated[str, Form(max_length=2200)] = "",
    hashtags: Annotated[str, Form(description="comma-separated")] = "",
    category: Annotated[str, Form(max_length=100)] = "",
) -> VideoOut:
    """Upload a video (multipart). The media is checked with PyAV, its frames hashed against the
    cell's banks and its caption classified before anything is stored; `status` says the outcome
    (published, processing = held for review, rejected)."""
    tags = [t.strip() for t in hashtags.split(",") if t.strip()]
    new = videos.NewVideo(caption=caption, hashtags=tags, category=category)
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        path = Path(tmp) / "upload"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, 1 << 20)
        if path.stat().st_size == 0:
            raise InvalidInput("the uploaded file is empty")
        video = moderation.upload_video(caller.cell, caller.user, new, path).video
    return VideoOut.of(video)


@router.get("/videos/{video_id}", response_model=VideoOut)
def get_video(video_id: str, caller: CallerDep) -> VideoOut:
    """Metadata of a video the caller may see (451 where restricted in their jurisdiction).
    Guest content says so: `guest_of` names its origin cell, `creator_handle` its creator."""
    video = videos.get_video(caller.cell.store, video_id, caller.user)
    return VideoOut.of(video, exchange.handle_of(caller.cell, video))


@router.delete("/videos/{video_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_video(video_id: str, caller: CallerDep) -> None:
    """Delete one of the caller's own videos (403 for someone else's; 409 for guest content,
    which is read-only in this cell: its creator deletes it in its origin cell)."""
    videos.delete_video(caller.cell, video_id, caller.user)


@router.get(
    "/videos/{video_id}/media",
    response_class=FileResponse,
    responses={206: {"description": "a byte range"}, 416: {"description": "range not satisfiable"}},
)
def media(video_id: str, caller: CallerDep) -> FileResponse:
    """The video file; honours `Range` requests so players can seek."""
    video = videos.get_video(caller.cell.store, video_id, caller.user)
    path, ref = videos.blob_of(caller.cell, video)
    return FileResponse(
        path,
        media_type=ref.content_type,
        headers={"ETag": f'"{ref.sha256}"', "Cache-Control": "private, max-age=3600"},
    )


@router.get("/users/{user_id}/videos", response_model=PageOut[VideoOut])
def by_creator(
    user_id: str,
    caller: CallerDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PageOut[VideoOut]:
    """A creator's videos, newest first."""
    page = videos.list_by_creator(caller.cell.store, user_id, caller.user, cursor, limit)
    return PageOut(items=[VideoOut.of(v) for v in page.items], next_cursor=page.next_cursor)
