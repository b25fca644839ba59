"""vPDQ-style video hashing: frames sampled at a set rate, one PDQ hash each, weak ones dropped."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
import av.error
import av.video.stream
import numpy as np
import numpy.typing as npt

from carveout.core import InvalidInput
from carveout.moderation.pdq import MIN_QUALITY, PdqHash, hash_pixels
from carveout.moderation.pdq_luma import BT601, BT709, hash_yuv

DEFAULT_FPS = 1.0
# Caps the work per upload: a 10-minute video still costs at most this many PDQ hashes.
MAX_FRAMES = 600
# Only frames larger than full HD are scaled down first: scaling moves hashes by up to ~30 bits
# against vPDQ's references (measured), so ordinary frames are hashed at their own size.
MAX_SIDE = 1920
_IN_FLIGHT = 4  # sampled frames waiting for the hashing thread
# Pixel formats whose first plane is 8-bit Y, by the range their Y spans when the frame does not
# say (the yuvj formats are full range by definition); the planar ones hold Cb and Cr apart.
_PLANAR_YUV = frozenset({"yuv420p", "yuv422p", "yuv444p"})
_LIMITED_YUV = _PLANAR_YUV | {"nv12", "nv21"}
_FULL_YUV = frozenset({"yuvj420p", "yuvj422p", "yuvj444p"})
# YUV matrices by AVColorSpace value, the tag swscale converts by (unspecified: it assumes
# BT.601). Other matrices (BT.2020, SMPTE 240M, ...) and unlisted formats go through RGB.
_MATRICES = {
    2: BT601,  # AVCOL_SPC_UNSPECIFIED
    5: BT601,  # AVCOL_SPC_BT470BG
    6: BT601,  # AVCOL_SPC_SMPTE170M
    1: BT709,  # AVCOL_SPC_BT709, what most phones tag
}
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG


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
    decoded: int = 0  # frames the decoder returned (fewer than the video has when skipping)

    @property
    def hexes(self) -> list[str]:
        return [f.hex for f in self.frames]


def hash_video(
    path: Path,
    *,
    fps: float = DEFAULT_FPS,
    max_frames: int = MAX_FRAMES,
    keep_all: bool = False,
    skip_unsampled: bool = True,
    from_luma: bool = True,
) -> VideoHash:
    """Decode the first video stream and hash one frame per 1/fps seconds (the first frame at or
    after each sampling instant). `keep_all` keeps low-quality frames too (for inspection).

    `skip_unsampled` asks the decoder to skip non-reference frames far from every sampling
    instant: nothing else depends on them and they are never hashed, so the hashes are the
    same as with every frame decoded (tested), for about 40% fewer frames decoded on a phone-
    style H.264 upload — decoding is most of the time from upload to decision.

    `from_luma` hashes 8-bit YUV frames (BT.601 or BT.709) straight from their planes
    (`pdq_luma`), about a tenth of the CPU of converting them to RGB for pdqhash, within a few
    bits of it; other frames, or all with False, go through RGB and pdqhash."""
    if fps <= 0:
        raise InvalidInput("frames per second must be positive")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InvalidInput(f"{path.name}: not a video this service can read") from exc
    frames: list[FrameHash] = []
    sampled = decoded = 0
    # Frames are hashed on a second thread while the decoder goes on (pdqhash and the pixel
    # conversion release the GIL); a short queue bounds the decoded frames held in memory.
    pending: deque[tuple[float, Future[PdqHash]]] = deque()

    def settle(limit: int) -> None:
        while len(pending) > limit:
            t, digest = pending.popleft()
            done = digest.result()
            index = sampled - len(pending) - 1
            if keep_all or done.quality >= MIN_QUALITY:
                frames.append(FrameHash(index, round(t, 3), done.hex, done.quality))

    with container, ThreadPoolExecutor(max_workers=1) as hasher:
        if not container.streams.video:
            raise InvalidInput(f"{path.name}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # As many decoder threads as cores. FFmpeg's own choice is one more than that, and on
        # this 2-core machine the extra frame thread cost CPU without gaining time (60 s
        # 720x1280 upload, median of 3: 1.70 s wall / 2.50 s CPU with FFmpeg's count, 1.59 s /
        # 2.32 s with two; identical hashes).
        stream.codec_context.thread_count = os.cpu_count() or 1
        grid = _SamplingGrid(fps, stream) if skip_unsampled else None
        next_at = 0.0
        try:
            for frame in _decoded(container, stream, grid):
                decoded += 1
                t = float(frame.time) if frame.time is not None else 0.0
                if grid is not None and grid.origin is None:
                    grid.origin = t
                if t + 1e-6 < next_at:
                    continue
                next_at = t + 1.0 / fps if next_at == 0.0 else next_at + 1.0 / fps
                while next_at <= t:
                    next_at += 1.0 / fps
                pending.append((t, hasher.submit(_hash_frame, frame, from_luma)))
                sampled += 1
                settle(_IN_FLIGHT)
                if sampled >= max_frames:
                    break
            settle(0)
        except (av.error.FFmpegError, ValueError) as exc:
            raise InvalidInput(f"{path.name}: the video is corrupt and cannot be decoded") from exc
    if sampled == 0:
        raise InvalidInput(f"{path.name}: the video has no decodable frame")
    return VideoHash(tuple(frames), sampled, decoded)


def _hash_frame(frame: av.VideoFrame, from_luma: bool = True) -> PdqHash:
    scale = MAX_SIDE / max(frame.width, frame.height)
    if scale < 1.0:
        frame = frame.reformat(
            width=max(1, round(frame.width * scale)),
            height=max(1, round(frame.height * scale)),
        )
    digest = _hash_yuv(frame) if from_luma else None
    if digest is not None:
        return digest
    return hash_pixels(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))


def _hash_yuv(frame: av.VideoFrame) -> PdqHash | None:
    """PDQ straight from the frame's YUV planes, or None for a format or matrix it does not
    handle (the caller converts those to RGB)."""
    name = frame.format.name
    matrix = _MATRICES.get(frame.colorspace)
    if (name not in _LIMITED_YUV and name not in _FULL_YUV) or matrix is None:
        return None
    luma = plane_view(frame, 0)
    chroma = None
    if matrix != BT601:  # the chroma counts: read Cb and Cr, from planar formats only
        if name not in _PLANAR_YUV and name not in _FULL_YUV:
            return None
        cb, cr = plane_view(frame, 1), plane_view(frame, 2)
        if cb is None or cr is None:
            return None
        chroma = (cb, cr)
    if luma is None:
        return None
    full_range = name in _FULL_YUV or frame.color_range == _JPEG_RANGE
    return hash_yuv(luma, chroma, full_range=full_range, matrix=matrix)


def plane_view(frame: av.VideoFrame, index: int) -> npt.NDArray[np.uint8] | None:
    """One 8-bit plane of the frame as a view of the decoder's buffer (no copy, line padding
    cut off), or None if its lines are laid out otherwise (e.g. bottom-up)."""
    plane = frame.planes[index]
    if plane.line_size < plane.width:
        return None
    count = plane.line_size * plane.height
    pixels = np.frombuffer(memoryview(plane), dtype=np.uint8, count=count)
    return pixels.reshape(plane.height, plane.line_size)[:, : plane.width]


class _SamplingGrid:
    """Which packets may hold a frame the sampler will hash.

    The sampler takes the first frame at or after origin + k/fps, where origin is the first
    decoded frame's time. A packet is needed if its presentation time lies just after such an
    instant (within a few source frames, so the first frame after it is always decoded) or if
    the origin is not known yet. The grid is fixed by the origin alone, not by which frames
    the decoder has returned so far, so decoder delay (threads, B-frame reordering) cannot make
    it skip a frame the sampler then wants. (A gap in the timestamps longer than the window, in
    variable-frame-rate video, can move a sample to the next decoded frame.)"""

    def __init__(self, fps: float, stream: av.video.stream.VideoStream) -> None:
        self.period = 1.0 / fps
        self.origin: float | None = None
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.1
        # Three source frames after the instant, and never less than 0.25 s: variable frame
        # rates and timestamp rounding stay inside the window.
        self.after = max(0.25, 3 * frame_s)
        self.before = 0.01  # timestamps rounded just below the instant

    def needed(self, t: float) -> bool:
        if self.origin is None or self.after >= self.period:
            return True
        offset = (t - self.origin) % self.period
        return offset <= self.after or offset >= self.period - self.before


def _decoded(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    grid: _SamplingGrid | None,
) -> Iterator[av.VideoFrame]:
    if grid is None:
        yield from container.decode(stream)
        return
    context = stream.codec_context
    time_base = float(stream.time_base) if stream.time_base is not None else 0.0
    for packet in container.demux(stream):
        if packet.pts is not None:
            # Keyframes and other reference frames are decoded whatever skip_frame says; only
            # frames nothing depends on are skipped, so the frames kept decode exactly.
            wanted = packet.is_keyframe or grid.needed(packet.pts * time_base)
            context.skip_frame = "DEFAULT" if wanted else "NONREF"
        yield from packet.decode()
