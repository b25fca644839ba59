"""PDQ of a decoded video frame computed from its luma (Y) plane, without converting to RGB.

Meta's reference PDQ (ThreatExchange pdq/cpp) turns RGB into luma 0.299 R + 0.587 G + 0.114 B,
blurs it with a Jarosz filter (two passes of a 1-D box filter along each axis, window
ceil(side / 128), windows cut short at the edges and averaged over what is left of them),
keeps 64x64 samples at the centres of a 64x64 grid, takes the 16x16 lowest non-constant DCT
coefficients and sets a bit where a coefficient exceeds their median. The quality score counts
the significant gradients of the 64x64 samples.

Two facts make a video frame cheap to hash:
- PDQ's luma weights are BT.601's, so for BT.601 YUV (what a decoder hands over unless the
  stream says otherwise) the luma of the RGB frame is Y itself, only stretched from the limited
  range 16..235 to 0..255: the chroma cancels out, and neither the RGB conversion nor the
  full-size float luma that pdqhash computes is needed. With another matrix (BT.709, what most
  phones tag) the luma is Y plus a fixed mix of the two chroma planes, which are a quarter of
  the pixels in 4:2:0.
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
# PDQ's luma weights of R, G and B, and the YUV matrices handled here as (Kr, Kb): the weights
# of R and B in the matrix's Y. BT.601's are PDQ's own.
_PDQ_R, _PDQ_G, _PDQ_B = 0.299, 0.587, 0.114
BT601 = (0.299, 0.114)
BT709 = (0.2126, 0.0722)
_CHROMA_SCALE = {False: 255.0 / 224.0, True: 1.0}  # chroma range 16..240 (limited) or full
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
    *,
    grid: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """The reference's 64x64 blurred and decimated luma of an h x w image (h, w >= 1): float
    luma as given, or 8-bit values mapped through `table` first. Only the rows the vertical
    pass reads are gathered, and mapped, then summed (float32, as the reference sums).

    `grid` is the full frame's size when the image is a subsampled chroma plane: each frame
    pixel then reads the chroma sample covering it (the nearest-neighbour upsampling of
    swscale's unscaled YUV to RGB conversion)."""
    height, width = grid if grid is not None else image.shape
    rows, cols = decimating_blur(height), decimating_blur(width)
    row_step, col_step = -(-height // image.shape[0]), -(-width // image.shape[1])
    band = image[rows.index // row_step]  # 64 x taps x w
    values = table[band] if table is not None else band.astype(np.float32, copy=False)
    # einsum without optimize= stays in numpy's own loops: no BLAS thread pool is woken.
    tall = np.einsum("kt,ktw->kw", rows.weights, values)
    small = np.einsum("kjt,jt->kj", tall[:, cols.index // col_step], cols.weights)
    return np.asarray(small, dtype=np.float32)


def chroma_weights(matrix: tuple[float, float]) -> tuple[float, float]:
    """How much PDQ's luma of the RGB a YUV matrix decodes to exceeds Y, per unit of Cb and of
    Cr (both scaled like Y): the RGB weights applied to the matrix's inverse. Zero for BT.601."""
    kr, kb = matrix
    kg = 1.0 - kr - kb
    r_per_cr, b_per_cb = 2.0 * (1.0 - kr), 2.0 * (1.0 - kb)
    g_per_cb, g_per_cr = 2.0 * kb * (1.0 - kb) / kg, 2.0 * kr * (1.0 - kr) / kg
    return _PDQ_B * b_per_cb - _PDQ_G * g_per_cb, _PDQ_R * r_per_cr - _PDQ_G * g_per_cr


def hash_float_luma(luma: npt.NDArray[np.float32]) -> PdqHash:
    """PDQ of an h x w float luma image, as the reference hashes it (tests compare this with
    pdqhash fed the same luma, to tell this code's error from the luma approximation's)."""
    if luma.ndim != 2:
        raise ValueError(f"expected a luma image, got an array of shape {luma.shape}")
    if min(luma.shape) < MIN_SIDE:
        return PdqHash("0" * 64, 0)
    return hash_small(downsample(luma))


def hash_yuv(
    luma: npt.NDArray[np.uint8],
    chroma: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]] | None = None,
    *,
    full_range: bool,
    matrix: tuple[float, float] = BT601,
) -> PdqHash:
    """PDQ of a frame from its 8-bit planes (h x w Y, and the Cb and Cr planes at their own,
    possibly subsampled, size; any strides: views into the decoder's buffers with their line
    padding are fine). `full_range` says Y spans 0..255 (JPEG range) rather than 16..235.
    The chroma planes are read only when `matrix` is not BT.601."""
    if luma.ndim != 2:
        raise ValueError(f"expected a luma plane, got an array of shape {luma.shape}")
    if min(luma.shape) < MIN_SIDE:
        return PdqHash("0" * 64, 0)
    small = downsample(luma, _LUMA[full_range])
    weights = chroma_weights(matrix)
    if max(abs(w) for w in weights) > 1e-9:  # BT.601: zero but for float rounding
        if chroma is None:
            raise ValueError("this YUV matrix needs the chroma planes")
        grid = (luma.shape[0], luma.shape[1])
        for plane, weight in zip(chroma, weights, strict=True):
            # The blur's weights sum to 1, so the chroma's centre (128) comes off afterwards.
            centred = downsample(plane, grid=grid) - np.float32(128)
            small += np.float32(weight * _CHROMA_SCALE[full_range]) * centred
    return hash_small(small)
