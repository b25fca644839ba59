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
    height: int | None = None,
    codec: str = "libx264",
    seed: int = 0,
) -> Path:
    """Encode a short clip of random-ish frames; `seed` varies the content (and so the sha256).
    Square `size` unless `height` is given (then `size` is the width)."""
    rng = np.random.default_rng(seed)
    rows = size if height is None else height
    container_format = "webm" if codec == "libvpx-vp9" else "mp4"
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = size
        stream.height = rows
        stream.pix_fmt = "yuv420p"
        for _ in range(int(seconds * fps)):
            pixels = rng.integers(0, 255, (rows, size, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_audio_only(path: Path, *, seconds: float = 1.0) -> Path:
    """An MP4 holding one AAC audio track and no video: a tone."""
    rate = 48_000
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        step = 1024
        for i in range(0, samples.size, step):
            chunk = samples[i : i + step]
            if chunk.size < step:
                chunk = np.pad(chunk, (0, step - chunk.size))
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
