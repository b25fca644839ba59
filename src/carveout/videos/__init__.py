"""Videos: upload with media checks, metadata, media blobs, listings."""

from carveout.videos.media import MediaInfo, probe
from carveout.videos.models import BlobRef, NewVideo, Video, VideoStatus
from carveout.videos.service import (
    UnavailableHere,
    blob_of,
    exists,
    get_video,
    list_by_creator,
    restricted_in,
    upload,
)

__all__ = [
    "BlobRef",
    "MediaInfo",
    "NewVideo",
    "UnavailableHere",
    "Video",
    "VideoStatus",
    "blob_of",
    "exists",
    "get_video",
    "list_by_creator",
    "probe",
    "restricted_in",
    "upload",
]
