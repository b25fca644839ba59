"""vPDQ's hash of one decoded frame: PDQ straight from 8-bit YUV planes where the format and
matrix allow it (`pdq_luma`), else through RGB and pdqhash.

Part of vpdq.py's implementation: the sequential decoder there and the runs' decoders
(vpdq_runs.py) hash their frames here."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

from carveout.moderation.pdq import PdqHash, hash_pixels
from carveout.moderation.pdq_luma import BT601, BT709, hash_yuv

# Only frames larger than full HD are scaled down first: scaling moves hashes by up to ~30 bits
# against vPDQ's references (measured), so ordinary frames are hashed at their own size.
MAX_SIDE = 1920
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
