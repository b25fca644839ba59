"""PDQ of a decoded video frame computed from its luma (Y) plane, without converting to RGB.

Meta's reference PDQ (ThreatExchange pdq/cpp) turns RGB into luma 0.299 R + 0.587 G + 0.114 B,
blurs it with a Jarosz filter (two passes of a 1-D box filter along each axis, window
ceil(side / 128), windows cut short at the edges and averaged over what is left of them),
keeps 64x64 samples at the centres of a 64x64 grid, takes the 16x16 lowest non-constant DCT
coefficients and sets a bit where a coefficient exceeds their median. The quality score counts
the significant gradients of the 64x64 samples.

Two facts make a video frame cheap to hash:
- For BT.601 YUV (what a decoder hands over unless the stream says otherwise), PDQ's luma
  weights are the very weights that define Y, so the luma of the RGB frame is Y itself, only
  stretched from the limited range 16..235 to 0..255: the chroma planes cancel out and the RGB
  conversion (and the full-size float luma pdqhash computes) is not needed.
- The blur and the decimation are linear and only 64x64 of their outputs are kept, so both
  together are, along each axis, 64 weighted sums of a few neighbouring pixels (weights built
  once per frame size): one gather and two small sums instead of four passes over a float
  copy of the full frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from carveout.moderation.pdq import PdqHash, bits_to_hex

# The reference's constants: the downsampled size, the smallest side it hashes (smaller images
# get an all-zero hash of quality 0).
SIDE = 64
MIN_SIDE = 5
_COEFFS = 16
# Limited ("TV", MPEG) range puts black at Y = 16 and white at Y = 235; swscale stretches that
# to 0..255, rounding down, and clips what lies outside: PDQ then sees those whole numbers.
# The exact (unrounded) stretch instead moved hashes of the sample videos up to 4 bits more.
_LIMITED_SCALE = 255.0 / 219.0
_LIMITED_BLACK = 16


def _luma_table(full_range: bool) -> npt.NDArray[np.float32]:
    y = np.arange(256, dtype=np.float64)
    if not full_range:
        y = np.clip(np.floor((y - _LIMITED_BLACK) * _LIMITED_SCALE), 0.0, 255.0)
    return y.astype(np.float32)


# A lookup turns 8-bit Y into PDQ's float luma in one pass over the pixels the blur reads.
_LUMA = {False: _luma_table(False), True: _luma_table(True)}


@dataclass(frozen=True)
class Band:
    """The blur and decimation along one axis of length n, as 64 weighted sums of a few
    neighbouring inputs: output k is sum over t of weights[k, t] * input[index[k, t]]. Each
    output reads about 2 * n / 128 inputs and neighbours barely overlap, so a frame is read
    about once, with no n x n matrix product (whose BLAS threads would compete with the
    decoder for the cores)."""

    index: npt.NDArray[np.intp]  # 64 x taps
    weights: npt.NDArray[np.float32]  # 64 x taps, 0 where a short row is padded


def _window_bounds(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """First and last input each output of the reference's 1-D box filter averages: output i
    covers i - (window - half) .. i + half - 1 with half = (window + 2) // 2, cut at both ends;
    its running sum divides by the number of inputs left, so the average is over those."""
    window = (n + 2 * SIDE - 1) // (2 * SIDE)  # ceil(n / 128)
    half = (window + 2) // 2
    out = np.arange(n)
    return np.maximum(out - (window - half), 0), np.minimum(out + half - 1, n - 1)


@lru_cache(maxsize=16)
def decimating_blur(n: int) -> Band:
    """The Jarosz filter (two box passes) along an axis of n, then the reference's decimation:
    the sample at int((k + 0.5) * n / 64) for k in 0..63 (centres, not corners)."""
    lo, hi = _window_bounds(n)
    picks = [int(((k + 0.5) * n) / SIDE) for k in range(SIDE)]
    rows = np.zeros((SIDE, n))
    for k, pick in enumerate(picks):
        # Second pass at `pick` averages first-pass outputs j in its window; each of those
        # averages inputs lo[j]..hi[j].
        share = 1.0 / (hi[pick] - lo[pick] + 1)
        for j in range(lo[pick], hi[pick] + 1):
            rows[k, lo[j] : hi[j] + 1] += share / (hi[j] - lo[j] + 1)
    first = np.array([lo[lo[p]] for p in picks])
    taps = int(max(hi[hi[p]] - lo[lo[p]] + 1 for p in picks))
    wanted = first[:, None] + np.arange(taps)[None, :]
    index = np.minimum(wanted, n - 1)
    weights = np.where(wanted < n, np.take_along_axis(rows, index, axis=1), 0.0)
    return Band(index, weights.astype(np.float32))


def _dct_matrix() -> npt.NDArray[np.float64]:
    # The reference's matrix, rows 1..16 of the DCT-II basis (row 0, the mean, is left out),
    # computed in double and stored as float.
    i = np.arange(1, _COEFFS + 1)[:, None]
    j = np.arange(SIDE)[None, :]
    dct = np.sqrt(2.0 / SIDE) * np.cos((np.pi / 2.0 / SIDE) * i * (2 * j + 1))
    return np.asarray(dct, dtype=np.float32).astype(np.float64)


_DCT = _dct_matrix()


def quality(small: npt.NDArray[np.float32]) -> int:
    """The reference's quality: each neighbour difference scaled to 0..100 and truncated
    toward zero (float arithmetic, as in C), summed, divided by 90, capped at 100."""
    scale, full = np.float32(100), np.float32(255)
    down = np.trunc(((small[:-1, :] - small[1:, :]) * scale) / full)
    across = np.trunc(((small[:, :-1] - small[:, 1:]) * scale) / full)
    total = int(np.abs(down).sum(dtype=np.int64)) + int(np.abs(across).sum(dtype=np.int64))
    return min(total // 90, 100)


def hash_small(small: npt.NDArray[np.float32]) -> PdqHash:
    """PDQ of the 64x64 blurred and decimated luma."""
    coeffs = (_DCT @ small.astype(np.float64) @ _DCT.T).astype(np.float32).ravel()
    # Torben's median of 256 values as the reference runs it is the 128th smallest.
    median = np.partition(coeffs, _COEFFS * _COEFFS // 2 - 1)[_COEFFS * _COEFFS // 2 - 1]
    # Bit i*16+j is coefficient (i, j); the hex text starts from bit 255.
    return PdqHash(bits_to_hex((coeffs > median)[::-1]), quality(small))


def downsample(
    image: npt.NDArray[np.uint8] | npt.NDArray[np.float32],
    table: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """The reference's 64x64 blurred and decimated luma of an h x w image (h, w >= 1): float
    luma as given, or 8-bit values mapped through `table` first. Only the rows the vertical
    pass reads are gathered, and mapped, then summed (float32, as the reference sums)."""
    rows, cols = decimating_blur(image.shape[0]), decimating_blur(image.shape[1])
    band = image[rows.index]  # 64 x taps x w
    values = table[band] if table is not None else band.astype(np.float32, copy=False)
    # einsum without optimize= stays in numpy's own loops: no BLAS thread pool is woken.
    tall = np.einsum("kt,ktw->kw", rows.weights, values)
    return np.asarray(np.einsum("kjt,jt->kj", tall[:, cols.index], cols.weights), dtype=np.float32)


def hash_float_luma(luma: npt.NDArray[np.float32]) -> PdqHash:
    """PDQ of an h x w float luma image, as the reference hashes it (tests compare this with
    pdqhash fed the same luma, to tell this code's error from the luma approximation's)."""
    if luma.ndim != 2:
        raise ValueError(f"expected a luma image, got an array of shape {luma.shape}")
    if min(luma.shape) < MIN_SIDE:
        return PdqHash("0" * 64, 0)
    return hash_small(downsample(luma))


def hash_luma(plane: npt.NDArray[np.uint8], *, full_range: bool) -> PdqHash:
    """PDQ of a frame given its 8-bit Y plane (h x w, any strides: a view into the decoder's
    buffer with its line padding is fine). `full_range` says Y spans 0..255 (JPEG range)
    rather than 16..235; either way the chroma must be BT.601's for the result to be the PDQ
    of the RGB frame."""
    if plane.ndim != 2:
        raise ValueError(f"expected a luma plane, got an array of shape {plane.shape}")
    if min(plane.shape) < MIN_SIDE:
        return PdqHash("0" * 64, 0)
    return hash_small(downsample(plane, _LUMA[full_range]))
