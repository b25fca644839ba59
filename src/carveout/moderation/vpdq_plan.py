"""vPDQ's packet scan: which frames the sampler will take and where H.264 IDR pictures cut the
video into runs, learned from the packets alone, before any frame is decoded.

Part of vpdq.py's implementation (its names are private to the vpdq modules): vpdq.py trusts a
plan only after the decoders' frames have matched it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error


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
