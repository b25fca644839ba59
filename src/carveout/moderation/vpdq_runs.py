"""vPDQ's run decoder: one stretch of the video, from an IDR picture to the next run's, decoded
by a single-threaded decoder on its own thread, the wanted frames hashed as they come.

Part of vpdq.py's implementation: vpdq.py starts one run per core where the plan
(vpdq_plan.py) found IDR pictures to cut at, and checks the runs' frames against the plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from carveout.core import InvalidInput
from carveout.moderation.pdq import PdqHash
from carveout.moderation.vpdq_frame import _hash_frame
from carveout.moderation.vpdq_plan import _h264_kind


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
