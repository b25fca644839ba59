"""Videos: upload with media checks, metadata, media blobs, listings."""

from carveout.videos.media import MediaInfo, probe
from carveout.videos.models import BlobRef, NewVideo, Video, VideoStatus
from carveout.videos.service import (
    GuestReadOnly,
    UnavailableHere,
    blob_of,
    delete_video,
    exists,
    get_video,
    get_video_in,
    list_by_creator,
    restricted_in,
    upload,
)

__all__ = [
    "BlobRef",
    "GuestReadOnly",
    "MediaInfo",
    "NewVideo",
    "UnavailableHere",
    "Video",
    "VideoStatus",
    "blob_of",
    "delete_video",
    "exists",
    "get_video",
    "get_video_in",
    "list_by_creator",
    "probe",
    "restricted_in",
    "upload",
]
