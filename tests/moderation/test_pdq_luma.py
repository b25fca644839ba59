"""PDQ from the Y plane against pdqhash: the same as the reference on the same float luma, and
close to pdqhash on the RGB frame for real frames of every size and YUV flavour it accepts."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pdqhash
import pytest
from PIL import Image

from carveout.core.settings import datasets_dir
from carveout.moderation import hamming, hash_video
from carveout.moderation.pdq import MIN_QUALITY, PdqHash, bits_to_hex
from carveout.moderation.pdq_luma import _LUMA, hash_float_luma
from carveout.moderation.vpdq_frame import _hash_frame, _hash_yuv, plane_view

PDQ = datasets_dir() / "pdq-threatexchange"
IMAGES = PDQ / "images"
needs_data = pytest.mark.skipif(not PDQ.is_dir(), reason="ThreatExchange media not present")
TOLERANCE = 10  # vPDQ's published frame hashes, as in test_hashing
# The YUV planes do not give exactly what PDQ sees: swscale's RGB conversion rounds each channel
# in fixed point and clips saturated colours (modelling the clipping brought a BT.709 frame from
# 10 bits to 0, but costs full-frame float passes). Measured on the 14 sample videos (every 5th
# frame, 1,168 frames of quality >= 50): 0 bits for 66%, 2 for 31%, at most 8; tagged BT.709
# (every 15th frame): at most 10, on a saturated test pattern; on the test images as frames of
# 481 px and more: at most 10 (a saturated LabelMe photo at 1920x1080). Frames under 64 px are
# not blurred at all, so every pixel's rounding shows: at most 12 bits measured.
LUMA_BITS = 10
TINY_BITS = 16
QUALITY_SLACK = 2
# Tiny, odd (line padding, odd chroma), portrait and landscape full HD (hashed at native size).
SIZES = ((5, 5), (7, 13), (637, 481), (481, 637), (1920, 1080), (1080, 1920))


def _pdqhash(rgb: npt.NDArray[np.uint8]) -> PdqHash:
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return PdqHash(bits_to_hex(bits), int(quality))


def _reference_luma(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    # What pdqhash's binding hands the C++ code: float64 weighted sum, stored as float32.
    luma = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114
    return luma.astype(np.float32)


def _rgb(path: Path, size: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        if size is not None:
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def _test_images() -> list[Path]:
    found = sorted((IMAGES / "reg-test-input" / "labelme-subset").glob("*.jpg"))
    found += sorted((IMAGES / "reg-test-input" / "dih").glob("*.jpg"))
    found += sorted((IMAGES / "bridge-mods").glob("*.jpg"))
    found += [IMAGES / "reg-test-input" / "pen-and-coaster.png", IMAGES / "misc-images" / "c.png"]
    return found


@needs_data
def test_float_luma_hash_is_the_reference_on_images() -> None:
    """Blur, decimation, DCT, median and quality: pdqhash and this module fed the same luma."""
    images = _test_images()
    assert len(images) > 20
    worst = 0
    for path in images:
        rgb = _rgb(path)
        ours, ref = hash_float_luma(_reference_luma(rgb)), _pdqhash(rgb)
        assert ours.quality == ref.quality, path.name
        worst = max(worst, hamming(ours.hex, ref.hex))
    assert worst <= 2, worst  # measured: 0 (float32 sums in another order could flip a tie)


@needs_data
def test_float_luma_hash_at_odd_and_tiny_sizes() -> None:
    bridge = IMAGES / "reg-test-input" / "dih" / "bridge-1-original.jpg"
    for size in ((4, 9), (9, 4), *SIZES):
        rgb = _rgb(bridge, size)
        ours, ref = hash_float_luma(_reference_luma(rgb)), _pdqhash(rgb)
        assert ours.quality == ref.quality, size
        assert hamming(ours.hex, ref.hex) <= 2, size
    assert hash_float_luma(_reference_luma(_rgb(bridge, (4, 9)))) == PdqHash("0" * 64, 0)


def test_luma_tables_are_swscale_on_grey() -> None:
    """With neutral chroma, PDQ's luma of PyAV's rgb24 frame is the table's value for Y: the
    limited-range stretch as swscale rounds it (down), and Y itself for full range."""
    for fmt, full_range in (("yuv420p", False), ("yuvj420p", True)):
        planes = np.full((24, 512), 128, dtype=np.uint8)
        planes[:16] = np.repeat(np.arange(256, dtype=np.uint8), 2)[None, :]
        rgb = av.VideoFrame.from_ndarray(planes, format=fmt).to_ndarray(format="rgb24")
        seen = _reference_luma(rgb)[0, ::2]
        assert np.abs(seen - _LUMA[full_range]).max() < 1e-3, fmt


@needs_data
@pytest.mark.parametrize(
    ("fmt", "tags", "luma_path"),
    [
        ("yuv420p", {}, True),
        ("yuvj420p", {}, True),
        ("yuv420p", {"dst_color_range": "JPEG"}, True),
        ("nv12", {}, True),
        ("yuv444p", {}, True),
        ("yuv420p", {"dst_colorspace": "ITU601"}, True),
        ("yuv420p", {"dst_colorspace": "ITU709"}, True),  # chroma planes read too
        ("yuvj420p", {"dst_colorspace": "ITU709"}, True),
        ("yuv444p", {"dst_colorspace": "ITU709"}, True),
        ("nv12", {"dst_colorspace": "ITU709"}, False),  # interleaved chroma: RGB path
        ("yuv420p", {"dst_colorspace": "BT2020"}, False),  # a matrix not handled: RGB path
        ("rgb24", {}, False),
    ],
)
def test_frames_hash_from_luma_close_to_pdqhash(
    fmt: str, tags: dict[str, str], luma_path: bool
) -> None:
    """ThreatExchange images turned into decoded-style frames of each size and YUV flavour: the
    Y-plane hash against pdqhash on the very rgb24 frame PyAV would have made of it."""
    images = [
        IMAGES / "reg-test-input" / "dih" / "bridge-1-original.jpg",
        IMAGES / "reg-test-input" / "pen-and-coaster.png",
        *sorted((IMAGES / "reg-test-input" / "labelme-subset").glob("*.jpg"))[:3],
    ]
    for path in images:
        for size in SIZES:
            source = av.VideoFrame.from_ndarray(_rgb(path, size), format="rgb24")
            frame = source.reformat(format=fmt, **tags)
            assert (_hash_yuv(frame) is not None) == luma_path, (fmt, tags)
            ref = _pdqhash(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
            ours = _hash_frame(frame, True)
            assert abs(ours.quality - ref.quality) <= QUALITY_SLACK, (path.name, size)
            distance = hamming(ours.hex, ref.hex)
            if not luma_path:
                assert distance == 0  # the RGB path itself
            if ref.quality >= MIN_QUALITY:
                limit = LUMA_BITS if min(size) >= 64 else TINY_BITS
                assert distance <= limit, (fmt, tags, path.name, size, distance)


@needs_data
def test_odd_width_frames_are_read_through_their_line_padding() -> None:
    rgb = _rgb(IMAGES / "reg-test-input" / "dih" / "bridge-1-original.jpg", (637, 481))
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    for index, shape in ((0, (481, 637)), (1, (241, 319)), (2, (241, 319))):
        plane = plane_view(frame, index)
        assert plane is not None
        line = frame.planes[index].line_size
        assert line > shape[1]  # padded rows: the view must skip the pad
        assert plane.shape == shape
        assert not plane.flags.owndata  # a view of the decoder's buffer, not a copy
        copied = np.frombuffer(bytes(frame.planes[index]), dtype=np.uint8)
        assert np.array_equal(
            plane, copied[: line * shape[0]].reshape(shape[0], line)[:, : shape[1]]
        )


@needs_data
def test_sample_video_frames_tagged_bt709() -> None:
    """Real decoded frames read as BT.709 (as a phone's would be): the chroma planes now count,
    and the hash still lands near pdqhash on PyAV's BT.709 conversion of the same frame."""
    checked = 0
    for video in sorted((PDQ / "videos").glob("*.mp4"))[::3]:
        with av.open(str(video)) as container:
            for i, frame in enumerate(container.decode(container.streams.video[0])):
                if i % 30:
                    continue
                frame.colorspace = 1  # AVCOL_SPC_BT709
                ours = _hash_yuv(frame)
                assert ours is not None
                ref = _pdqhash(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
                assert abs(ours.quality - ref.quality) <= QUALITY_SLACK, (video.name, i)
                if ref.quality >= MIN_QUALITY:
                    assert hamming(ours.hex, ref.hex) <= LUMA_BITS, (video.name, i)
                    checked += 1
    assert checked > 20


@needs_data
@pytest.mark.slow
def test_sample_videos_from_luma_same_frames_close_hashes_and_conformant() -> None:
    """The 14 sample videos: the Y-plane path samples the same frames as the RGB path, keeps
    their quality, lands within LUMA_BITS of their hashes, and stays within TOLERANCE of vPDQ's
    published hash of the frame at the nearest timestamp."""
    worst_rgb = worst_published = 0
    videos = sorted((PDQ / "videos").glob("*.mp4"))
    assert len(videos) == 14
    for video in videos:
        luma = hash_video(video, keep_all=True)
        rgb = hash_video(video, keep_all=True, from_luma=False)
        assert [(f.index, f.seconds) for f in luma.frames] == [
            (f.index, f.seconds) for f in rgb.frames
        ]
        assert (luma.sampled, luma.decoded) == (rgb.sampled, rgb.decoded)
        published: dict[float, str] = {}
        listing = PDQ / "vpdq-sample-hashes" / f"{video.stem}.txt"
        for line in listing.read_text().splitlines():
            _, _, hexdigest, seconds = line.split(",")
            published[float(seconds)] = hexdigest
        for ours, theirs in zip(luma.frames, rgb.frames, strict=True):
            assert abs(ours.quality - theirs.quality) <= QUALITY_SLACK, video.name
            if theirs.quality < MIN_QUALITY:
                continue  # dropped by hash_video either way (its quality agrees, above)
            worst_rgb = max(worst_rgb, hamming(ours.hex, theirs.hex))
            nearest = min(published, key=lambda t: abs(t - ours.seconds))
            worst_published = max(worst_published, hamming(ours.hex, published[nearest]))
    assert worst_rgb <= LUMA_BITS, worst_rgb
    assert worst_published <= TOLERANCE, worst_published
