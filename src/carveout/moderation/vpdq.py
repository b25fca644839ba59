"""vPDQ-style video hashing: frames sampled at a set rate, one PDQ hash each, weak ones dropped.

The public API and the choice of decoding path live here; the parts it is built from, each
imported only by the ones above it:
- vpdq_plan.py: the packet scan, which frames will be sampled and where IDR pictures cut runs;
- vpdq_runs.py: one run decoded from its IDR picture by a single-threaded decoder;
- vpdq_frame.py: one decoded frame's PDQ hash, from its YUV planes or through RGB."""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import av.error
import av.video.stream

from carveout.core import InvalidInput
from carveout.moderation.pdq import MIN_QUALITY, PdqHash
from carveout.moderation.vpdq_frame import _hash_frame
from carveout.moderation.vpdq_plan import _Plan, _Sampler, _scan, _seconds
from carveout.moderation.vpdq_runs import _hash_run

DEFAULT_FPS = 1.0
# Caps the work per upload: a 10-minute video still costs at most this many PDQ hashes.
MAX_FRAMES = 600
_IN_FLIGHT = 4  # sampled frames waiting for the hashing thread
# One upload at a time decodes in runs (below); another one hashed meanwhile in this process
# takes one frame-threaded decoder. Runs are Python threads: two uploads' runs at once queue
# on the GIL each time a thread is preempted while holding it (two processes hashing the 60 s
# 720x1280 upload at once: 3.8-6.9 s each with runs, 2.7-5.2 s with frame threads, load 4-5).
_RUNS = threading.Lock()


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

    `skip_unsampled` first reads the packets without decoding them (`_scan`: a few tens of ms
    for a minute of video) to learn which frames the sampler will take, then asks the decoder
    to skip every non-reference frame but those: nothing else depends on them and they are
    never hashed, so the hashes are the same as with every frame decoded (tested; checked on
    every run, with a full decode when the decoder's frames are not the ones the packets
    announced). On the 60 s 720x1280 latency upload, 1,044 of 1,800 frames are decoded.
    Where the scan finds H.264 IDR pictures, the video is cut there into one run per core,
    each decoded on its own thread by a single-threaded decoder (`_hash_segments`); otherwise
    one decoder with frame threads takes it all.

    `from_luma` hashes 8-bit YUV frames (BT.601 or BT.709) straight from their planes
    (`pdq_luma`), about a tenth of the CPU of converting them to RGB for pdqhash, within a few
    bits of it; other frames, or all with False, go through RGB and pdqhash."""
    if fps <= 0:
        raise InvalidInput("frames per second must be positive")
    plan = _scan(path, fps, max_frames) if skip_unsampled else None
    hashed = None
    if plan is not None and plan.starts and _RUNS.acquire(blocking=False):
        try:
            hashed = _hash_segments(path, keep_all, from_luma, plan)
        finally:
            _RUNS.release()
    elif plan is not None:
        hashed = _decode_and_hash(path, fps, max_frames, keep_all, from_luma, plan)
    if hashed is None:  # no plan, or it did not hold: hash again from every frame
        hashed = _decode_and_hash(path, fps, max_frames, keep_all, from_luma, None)
    if hashed is None or hashed.sampled == 0:
        raise InvalidInput(f"{path.name}: the video has no decodable frame")
    return hashed


def _decode_and_hash(
    path: Path,
    fps: float,
    max_frames: int,
    keep_all: bool,
    from_luma: bool,
    plan: _Plan | None,
) -> VideoHash | None:
    """Hash the sampled frames, skipping every non-reference frame the plan does not sample;
    None if the decoder returns a frame the plan did not announce or the sampler takes another
    frame than planned (the skipped frames might then have held the right one)."""
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
        _set_threads(stream)
        time_base = stream.time_base or Fraction(1, 1)
        wanted = frozenset(plan.samples) if plan is not None else frozenset()
        sampler = _Sampler(fps)
        last = None
        try:
            for packet in container.demux(stream):
                if plan is not None and packet.pts is not None:
                    # Keyframes and other reference frames are decoded whatever skip_frame
                    # says; only frames nothing depends on are skipped.
                    take = packet.is_keyframe or packet.pts in wanted
                    stream.codec_context.skip_frame = "DEFAULT" if take else "NONREF"
                for frame in packet.decode():
                    decoded += 1
                    pts = frame.pts
                    if plan is not None and (
                        pts is None or pts not in plan.frames or (last is not None and pts <= last)
                    ):
                        return None
                    last = pts
                    t = _seconds(pts, time_base) if pts is not None else 0.0
                    if not sampler.take(t):
                        continue
                    if plan is not None and (
                        sampled >= len(plan.samples) or plan.samples[sampled] != pts
                    ):
                        return None
                    pending.append((t, hasher.submit(_hash_frame, frame, from_luma)))
                    sampled += 1
                    settle(_IN_FLIGHT)
                    if sampled >= max_frames:
                        break
                if sampled >= max_frames:
                    break
            settle(0)
        except (av.error.FFmpegError, ValueError) as exc:
            raise InvalidInput(f"{path.name}: the video is corrupt and cannot be decoded") from exc
    if plan is not None and sampled != len(plan.samples):
        return None  # a planned frame never came (the decoder dropped it)
    return VideoHash(tuple(frames), sampled, decoded)


def _hash_segments(path: Path, keep_all: bool, from_luma: bool, plan: _Plan) -> VideoHash | None:
    """The plan's frames decoded in runs that start at IDR pictures, each run on its own thread
    with a single-threaded decoder, sampled frames hashed where they are decoded; None when
    the decoders' frames are not the plan's (then everything is decoded again at once)."""
    bounds = list(zip(((None, None), *plan.starts), (*plan.starts, (None, None)), strict=True))
    wanted = frozenset(plan.samples)
    with ThreadPoolExecutor(max_workers=len(bounds)) as runs:
        parts = list(
            runs.map(
                lambda b: _hash_run(path, b[0][1], b[0][0], b[1][0], wanted, from_luma), bounds
            )
        )
    if any(part is None for part in parts):
        return None
    shown = [pts for part in parts if part is not None for pts in part.shown]
    hashed = [h for part in parts if part is not None for h in part.hashed]
    # Each run's frames in order, every one announced, runs not overlapping, and exactly the
    # planned samples hashed: the frames a single decoder would have returned.
    if any(b <= a for a, b in pairwise(shown)) or not plan.frames.issuperset(shown):
        return None
    if [pts for pts, _ in hashed] != list(plan.samples):
        return None
    time_base = plan.time_base
    frames = tuple(
        FrameHash(i, round(_seconds(pts, time_base), 3), h.hex, h.quality)
        for i, (pts, h) in enumerate(hashed)
        if keep_all or h.quality >= MIN_QUALITY
    )
    return VideoHash(frames, len(hashed), len(shown))


def _set_threads(stream: av.video.stream.VideoStream) -> None:
    stream.thread_type = "AUTO"
    # As many decoder threads as cores. FFmpeg's own choice is one more than that, and on
    # this 2-core machine the extra frame thread cost CPU without gaining time (60 s
    # 720x1280 upload, median of 3: 1.70 s wall / 2.50 s CPU with FFmpeg's count, 1.59 s /
    # 2.32 s with two; identical hashes).
    stream.codec_context.thread_count = os.cpu_count() or 1
