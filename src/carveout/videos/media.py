"""Media checks with PyAV: is an upload a complete video we accept, and what are its dimensions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from carveout.core import InvalidInput

# FFmpeg demuxer names -> the MIME type we serve the file with.
CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/webm"}
CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1"})
MAX_DURATION_MS = 10 * 60 * 1000
MIN_DURATION_MS = 500
# 4K UHD in either orientation. Larger frames are no short video a phone records, and each one
# decoded for moderation would cost width x height x 1.5 bytes (a 16384x16384 H.264 frame: 400 MB).
MAX_SIDE = 4096
MAX_PIXELS = 3840 * 2160


@dataclass(frozen=True)
class MediaInfo:
    container: str
    codec: str
    content_type: str
    width: int
    height: int
    duration_ms: int


def probe(path: Path, *, max_duration_ms: int = MAX_DURATION_MS) -> MediaInfo:
    """Open, check container/codec/duration, demux every packet and decode the first frame.

    Demuxing (no decoding) is cheap and catches truncated files: an upload cut short keeps its
    header but loses packets, so the packet count falls short of what the header promises."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InvalidInput(
            "the file is not a video this service can read (not a video, or truncated)"
        ) from exc
    with container:
        fmt = container.format.name
        if fmt not in CONTAINERS:
            raise InvalidInput(f"container {fmt!r} not accepted: upload MP4 or WebM")
        if not container.streams.video:
            raise InvalidInput("the file has no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec not in CODECS:
            raise InvalidInput(
                f"video codec {codec!r} not accepted: use {', '.join(sorted(CODECS))}"
            )
        if container.duration is None or container.duration <= 0:
            raise InvalidInput("the video has no duration")
        duration_ms = int(container.duration // 1000)
        if duration_ms < MIN_DURATION_MS or duration_ms > max_duration_ms:
            raise InvalidInput(
                f"video duration {duration_ms / 1000:.1f} s outside "
                f"{MIN_DURATION_MS / 1000:.1f}-{max_duration_ms / 1000:.0f} s"
            )
        width, height = int(stream.width), int(stream.height)
        if width <= 0 or height <= 0:
            raise InvalidInput("the video has no frame size")
        if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
            raise InvalidInput(
                f"video frame size {width}x{height} too large: at most {MAX_SIDE} pixels a side "
                f"and {MAX_PIXELS:,} in all (4K UHD)"
            )
        expected = int(stream.frames or 0)
        try:
            packets = sum(1 for pkt in container.demux(stream) if pkt.size)
            container.seek(0)
            first = next(container.decode(stream), None)
        except (av.error.FFmpegError, ValueError) as exc:
            raise InvalidInput("the video is corrupt and cannot be decoded") from exc
        if first is None:
            raise InvalidInput("the video has no decodable frame")
        if expected and packets < expected:
            raise InvalidInput(f"the video is truncated: {packets} of {expected} frames present")
    return MediaInfo(
        container=fmt,
        codec=codec,
        content_type=CONTAINERS[fmt],
        width=width,
        height=height,
        duration_ms=duration_ms,
    )
