"""Small real video files made by the tests themselves with PyAV (no binary fixtures)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def make_video(
    path: Path,
    *,
    seconds: float = 1.0,
    fps: int = 10,
    size: int = 64,
    codec: str = "libx264",
    seed: int = 0,
) -> Path:
    """Encode a short clip of random-ish frames; `seed` varies the content (and so the sha256)."""
    rng = np.random.default_rng(seed)
    container_format = "webm" if codec == "libvpx-vp9" else "mp4"
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = size
        stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(int(seconds * fps)):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
