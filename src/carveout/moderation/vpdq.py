"""vPDQ-style video hashing: frames sampled at a set rate, one PDQ hash each, weak ones dropped."""

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
# One upload at a time decodes in runs (below); another one hashed meanwhile in this process
# takes one frame-threaded decoder. Runs are Python threads: two uploads' runs at once queue
# on the GIL each time a thread is preempted while holding it (two processes hashing the 60 s
# 720x1280 upload at once: 3.8-6.9 s each with runs, 2.7-5.2 s with frame threads, load 4-5).
_RUNS = threading.Lock()
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


class _Sampler:
    """Takes the first frame at or after each sampling instant: the first frame, then one per
    1/fps seconds after it (an instant with no frame of its own takes the next frame)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.next_at = 0.0

    def take(self, t: float) -> bool:
        if t + 1e-6 < self.next_at:
            return False
        self.next_at = t + self.period if self.next_at == 0.0 else self.next_at + self.period
        while self.next_at <= t:
            self.next_at += self.period
        return True


def _seconds(pts: int, time_base: Fraction) -> float:
    # PyAV's Frame.time, computed the same way for packets and frames so the plan and the
    # sampler compare the same floats.
    return float(pts) * time_base.numerator / time_base.denominator


@dataclass(frozen=True)
class _Plan:
    """What the packets, read without decoding, say the decoder will return."""

    frames: frozenset[int]  # pts of every frame the decoder will return
    samples: tuple[int, ...]  # pts of the frames the sampler will take, in order
    time_base: Fraction
    # Where decoders after the first start, one per core: (pts, dts) of IDR packets. Empty:
    # one decoder (no IDR to split at, or not H.264 as MP4 stores it).
    starts: tuple[tuple[int, int], ...] = ()


def _scan(path: Path, fps: float, max_frames: int) -> _Plan | None:
    """The plan, or None where the packets cannot tell (a packet without a timestamp, a file
    the demuxer refuses: the decode reports those)."""
    packets: list[_Packet] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            # Read while the container is open: the stream's fields are freed with it.
            time_base = stream.time_base
            if time_base is None:
                return None
            extradata = stream.codec_context.extradata
            h264 = stream.codec_context.name == "h264"
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's final empty packet
                    continue
                if packet.pts is None or packet.dts is None:
                    return None
                idr, ref = _h264_kind(bytes(packet), extradata) if h264 else (False, True)
                # Packets the container's edit list cuts are decoded but never returned.
                packets.append(
                    _Packet(
                        packet.pts, packet.dts, idr and packet.is_keyframe, ref, packet.is_discard
                    )
                )
    except (av.error.FFmpegError, ValueError, OSError):
        return None
    shown = sorted(p.pts for p in packets if not p.discard)
    sampler = _Sampler(fps)
    samples: list[int] = []
    for pts in shown:
        if sampler.take(_seconds(pts, time_base)):
            samples.append(pts)
            if len(samples) >= max_frames:
                break
    starts = _split(packets, frozenset(samples), os.cpu_count() or 1)
    return _Plan(frozenset(shown), tuple(samples), time_base, starts)


@dataclass(frozen=True)
class _Packet:
    pts: int
    dts: int
    idr: bool  # an H.264 IDR picture: nothing after it refers to anything before it
    ref: bool  # holds a reference picture (unknown: True)
    discard: bool


def _split(
    packets: list[_Packet], samples: frozenset[int], parts: int
) -> tuple[tuple[int, int], ...]:
    """IDR packets that cut the decoding work (packets decoded in full: reference frames and
    samples) into `parts` runs as even as the IDRs allow. Decoding restarts cleanly at an IDR
    picture, so each run can go to its own single-threaded decoder: cores busy without the
    frame threads' waits on each other, which cost CPU and, when other work shares the cores,
    time."""
    work = [p.ref or p.pts in samples for p in packets]
    total = sum(work)
    starts: list[tuple[int, int]] = []
    done = 0
    for p, decoded in zip(packets, work, strict=True):
        if p.idr and done and len(starts) + 1 < parts and done >= total * (len(starts) + 1) / parts:
            starts.append((p.pts, p.dts))
        done += decoded
    return tuple(starts)


def _h264_kind(packet: bytes, extradata: bytes | None) -> tuple[bool, bool]:
    """(holds an IDR slice, holds a reference slice) of one H.264 access unit stored as MP4
    stores it: NAL units after a length prefix whose size the avcC record gives. Any other
    layout: (False, True), which splits nothing and skips nothing more."""
    if not extradata or len(extradata) < 5 or extradata[0] != 1:
        return False, True
    prefix = (extradata[4] & 3) + 1
    idr = ref = False
    pos = 0
    while pos + prefix < len(packet):
        length = int.from_bytes(packet[pos : pos + prefix], "big")
        header = packet[pos + prefix]
        kind = header & 0x1F
        if kind in (1, 5):  # a coded slice: non-IDR, IDR
            idr = idr or kind == 5
            ref = ref or (header >> 5) & 3 != 0  # nal_ref_idc
        pos += prefix + length
    return idr, ref


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


@dataclass(frozen=True)
class _Run:
    shown: list[int]  # pts of the frames decoded, in the order the decoder returned them
    hashed: list[tuple[int, PdqHash]]


def _hash_run(
    path: Path,
    seek_dts: int | None,
    first_pts: int | None,
    stop_pts: int | None,
    wanted: frozenset[int],
    from_luma: bool,
) -> _Run | None:
    """Decode from the IDR packet `first_pts` (the file's start: None) up to the IDR packet
    `stop_pts` (the end: None), hashing the wanted frames."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InvalidInput(f"{path.name}: not a video this service can read") from exc
    run = _Run([], [])
    with container:
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_count = 1  # the runs are the parallelism

        def take(frames: list[av.VideoFrame]) -> None:
            for frame in frames:
                run.shown.append(frame.pts if frame.pts is not None else -1)
                if frame.pts in wanted:
                    run.hashed.append((frame.pts, _hash_frame(frame, from_luma)))

        try:
            if first_pts is not None:
                # To the keyframe at or before the IDR picture (demuxers differ on whether
                # that is by presentation or decoding time): packets before it are passed over.
                container.seek(first_pts, stream=stream, backward=True, any_frame=False)
            started = first_pts is None
            for packet in container.demux(stream):
                if packet.size == 0:
                    break
                if not started:
                    if packet.pts == first_pts:
                        if not _h264_kind(bytes(packet), context.extradata)[0]:
                            return None  # not the IDR picture the scan found
                        started = True
                    elif packet.dts is None or seek_dts is None or packet.dts >= seek_dts:
                        return None  # the seek went past the IDR picture
                    else:
                        continue
                if stop_pts is not None and packet.pts == stop_pts:
                    break
                take_it = packet.is_keyframe or packet.pts in wanted
                context.skip_frame = "DEFAULT" if take_it else "NONREF"
                take(context.decode(packet))
            if not started:
                return None
            take(context.decode(None))  # the frames still held for reordering
        except (av.error.FFmpegError, ValueError) as exc:
            raise InvalidInput(f"{path.name}: the video is corrupt and cannot be decoded") from exc
    return run


def _set_threads(stream: av.video.stream.VideoStream) -> None:
    stream.thread_type = "AUTO"
    # As many decoder threads as cores. FFmpeg's own choice is one more than that, and on
    # this 2-core machine the extra frame thread cost CPU without gaining time (60 s
    # 720x1280 upload, median of 3: 1.70 s wall / 2.50 s CPU with FFmpeg's count, 1.59 s /
    # 2.32 s with two; identical hashes).
    stream.codec_context.thread_count = os.cpu_count() or 1


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
