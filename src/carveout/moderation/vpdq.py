"""vPDQ-style video hashing: frames sampled at a set rate, one PDQ hash each, weak ones dropped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from carveout.core import InvalidInput
from carveout.moderation.pdq import MIN_QUALITY, hash_pixels

DEFAULT_FPS = 1.0
# Caps the work per upload: a 10-minute video still costs at most this many PDQ hashes.
MAX_FRAMES = 600
# Only frames larger than full HD are scaled down first: scaling moves hashes by up to ~30 bits
# against vPDQ's references (measured), so ordinary frames are hashed at their own size.
MAX_SIDE = 1920


@dataclass(frozen=True)
class FrameHash:
    index: int  # position among the sampled frames
    seconds: float  # presentation time
    hex: str
    quality: int


@dataclass(frozen=True)
class VideoHash:
    frames: tuple[FrameHash, ...]  # only frames of quality >= MIN_QUALITY
    sampled: int  # frames hashed before the quality filter

    @property
    def hexes(self) -> list[str]:
        return [f.hex for f in self.frames]


def hash_video(
    path: Path, *, fps: float = DEFAULT_FPS, max_frames: int = MAX_FRAMES, keep_all: bool = False
) -> VideoHash:
    """Decode the first video stream and hash one frame per 1/fps seconds (the first frame at or
    after each sampling instant). `keep_all` keeps low-quality frames too (for inspection)."""
    if fps <= 0:
        raise InvalidInput("frames per second must be positive")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InvalidInput(f"{path.name}: not a video this service can read") from exc
    frames: list[FrameHash] = []
    sampled = 0
    with container:
        if not container.streams.video:
            raise InvalidInput(f"{path.name}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_at = 0.0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else 0.0
                if t + 1e-6 < next_at:
                    continue
                next_at = t + 1.0 / fps if next_at == 0.0 else next_at + 1.0 / fps
                while next_at <= t:
                    next_at += 1.0 / fps
                scale = MAX_SIDE / max(frame.width, frame.height)
                if scale < 1.0:
                    frame = frame.reformat(
                        width=max(1, round(frame.width * scale)),
                        height=max(1, round(frame.height * scale)),
                    )
                digest = hash_pixels(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
                sampled += 1
                if keep_all or digest.quality >= MIN_QUALITY:
                    frames.append(FrameHash(sampled - 1, round(t, 3), digest.hex, digest.quality))
                if sampled >= max_frames:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            raise InvalidInput(f"{path.name}: the video is corrupt and cannot be decoded") from exc
    if sampled == 0:
        raise InvalidInput(f"{path.name}: the video has no decodable frame")
    return VideoHash(tuple(frames), sampled)
