"""PDQ perceptual hashes of images and decoded frames, as 64-character hex and a quality score."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image, UnidentifiedImageError

from carveout.core import InvalidInput

HASH_BITS = 256
HEX_CHARS = HASH_BITS // 4
# PDQ's own advice: distance <= 31 is a match, quality < 50 is too featureless to trust.
MATCH_DISTANCE = 31
MIN_QUALITY = 50
# Refuse decompression bombs before decoding: 50 megapixels is far above any real upload.
MAX_PIXELS = 50_000_000
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class PdqHash:
    hex: str
    quality: int


def parse_hex(text: str) -> str:
    """A PDQ hash as lower-case hex, or InvalidInput saying what is wrong with it."""
    value = text.strip().lower()
    if len(value) != HEX_CHARS:
        raise InvalidInput(f"a PDQ hash has {HEX_CHARS} hex digits, got {len(value)}")
    if not set(value) <= _HEX:
        raise InvalidInput("a PDQ hash holds hex digits only (0-9, a-f)")
    return value


def bits_to_hex(bits: npt.NDArray[np.integer]) -> str:
    # pdqhash returns bit 0 first; ThreatExchange's hex is the same bits packed big-endian.
    return bytes(np.packbits(bits.astype(np.uint8))).hex()


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def hash_pixels(rgb: npt.NDArray[np.uint8]) -> PdqHash:
    """Hash one RGB image held as an (h, w, 3) uint8 array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise InvalidInput(f"expected an RGB image, got an array of shape {rgb.shape}")
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return PdqHash(bits_to_hex(bits), int(quality))


def hash_image(path: Path) -> PdqHash:
    """Hash an image file; corrupt, truncated or enormous images are refused with a reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise InvalidInput(
                        f"image of {width}x{height} pixels exceeds {MAX_PIXELS:,} pixels"
                    )
                img.load()
                rgb = np.asarray(img.convert("RGB"))
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:
        raise InvalidInput(f"{path.name}: not an image this service can read, or too large") from e
    except OSError as exc:
        raise InvalidInput(f"{path.name}: the image is corrupt or truncated ({exc})") from exc
    return hash_pixels(rgb)
