"""Conformance: carveout's PDQ and vPDQ hashes next to the hashes ThreatExchange publishes."""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from carveout.bench.api import Progress
from carveout.bench.moderation_figures import Figure, Section, distribution, share
from carveout.bench.moderation_media import PDQ_DIR, published_images, sample_videos
from carveout.moderation import hamming, hash_image, hash_video
from carveout.moderation.index import pack
from carveout.moderation.pdq import MATCH_DISTANCE, MIN_QUALITY

# The shared data's README: pdqhash lands within 0-10 bits of the published image hashes.
CLOSE = 10
STEP = "conformance"


def distances(queries: list[str], refs: list[str]) -> npt.NDArray[np.int64]:
    """(queries, refs) Hamming distances of hex PDQ hashes, by XOR and popcount."""
    a, b = pack(queries), pack(refs)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.int64)
    return np.asarray(np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2), dtype=np.int64)


def _closest(queries: list[str], refs: list[str]) -> list[int]:
    if not refs:
        return [256] * len(queries)
    return [int(d) for d in distances(queries, refs).min(axis=1)] if queries else []


def _nearest_frame(times: list[float], t: float) -> int:
    i = bisect.bisect_left(times, t)
    if i == len(times) or (i > 0 and t - times[i - 1] <= times[i] - t):
        return i - 1
    return i


def image_conformance(datasets: Path, progress: Progress) -> tuple[list[Figure], dict[str, Any]]:
    listed = published_images(datasets)
    lists = sorted(p.name for p in (datasets / PDQ_DIR).glob("expected_pdq_*.csv"))
    present = [p for p in listed if p.path.exists()]
    ours = {}
    for i, p in enumerate(present):
        if p.path not in ours:
            ours[p.path] = hash_image(p.path).hex
        progress(STEP, i + 1, len(present) + 1, "PDQ images")
    distances = [hamming(ours[p.path], p.hex) for p in present]
    # The yardstick: how far our hash of each image is from the published hashes of the other
    # pictures in the lists. The tolerance means something only if these stay far above 31.
    unrelated = [
        _closest([ours[p.path]], [q.hex for q in listed if q.group != p.group])[0] for p in present
    ]
    figures = [
        Figure(
            "PDQ images within 31 bits of the published hash",
            share([d <= MATCH_DISTANCE for d in distances]),
            "%",
            note=f"{len(present)} distinct image/hash pairs from {len(lists)} published lists",
        ),
        Figure(
            "PDQ images: median distance to the published hash",
            distribution(distances).get("median"),
            "bits",
            baseline=min(unrelated, default=None),
            baseline_name="closest published hash of another picture",
            note=f"max {max(distances, default=0)} bits; "
            f"{share([d <= CLOSE for d in distances]):.0f}% within {CLOSE}",
        ),
    ]
    details = {
        "lists": lists,
        "pairs": len(present),
        "listed_without_image": sorted({p.listed for p in listed if not p.path.exists()}),
        "distance_bits": distribution(distances),
        f"within_{CLOSE}_bits_pct": share([d <= CLOSE for d in distances]),
        "within_31_bits_pct": share([d <= MATCH_DISTANCE for d in distances]),
        "closest_other_picture_bits": distribution(unrelated),
        "per_image": [
            {"image": p.listed, "bits": d} for p, d in zip(present, distances, strict=True)
        ],
    }
    return figures, details


def video_conformance(
    datasets: Path, progress: Progress, *, max_videos: int | None
) -> tuple[list[Figure], dict[str, Any]]:
    videos = sample_videos(datasets)
    if max_videos is not None:
        videos = sorted(videos, key=lambda v: len(v.reference))[:max_videos]
    distances: list[int] = []
    low_quality = 0
    per_video = []
    ours_by_family: dict[str, list[str]] = {}
    for i, video in enumerate(videos):
        ref = sorted(video.reference, key=lambda f: f.seconds)
        times = [f.seconds for f in ref]
        frames = hash_video(video.path, keep_all=True).frames
        mine, weak = [], 0
        for f in frames:
            j = _nearest_frame(times, f.seconds)
            # Below quality 50 a PDQ hash is noise (the pipeline drops such frames): counted,
            # not compared.
            if ref[j].quality < MIN_QUALITY:
                weak += 1
                continue
            mine.append(hamming(f.hex, ref[j].hex))
        distances += mine
        low_quality += weak
        ours_by_family.setdefault(video.family, []).extend(f.hex for f in frames)
        per_video.append(
            {
                "video": video.path.name,
                "frames_compared": len(mine),
                "frames_below_quality_50": weak,
                "published_frames": len(ref),
                "distance_bits": distribution(mine),
            }
        )
        progress(STEP, i + 1, len(videos), f"vPDQ {video.path.name}")
    # Yardstick: our frames against the published frames of the other clips.
    unrelated = []
    for family, ours in ours_by_family.items():
        others = [f.hex for v in videos if v.family != family for f in v.reference]
        unrelated += _closest(ours, others)
    figures = [
        Figure(
            "vPDQ frames within 31 bits of the published frame hash",
            share([d <= MATCH_DISTANCE for d in distances]),
            "%",
            note=f"{len(distances)} frames (1 per second) of {len(videos)} sample videos; "
            f"{low_quality} of quality < {MIN_QUALITY} not compared",
        ),
        Figure(
            "vPDQ frames: median distance to the published frame hash",
            distribution(distances).get("median"),
            "bits",
            baseline=min(unrelated, default=None),
            baseline_name="closest published frame of another clip",
            note=f"max {max(distances, default=0)} bits",
        ),
    ]
    details = {
        "videos": len(videos),
        "frames": len(distances),
        "frames_below_quality_50": low_quality,
        "distance_bits": distribution(distances),
        "within_31_bits_pct": share([d <= MATCH_DISTANCE for d in distances]),
        "closest_other_clip_bits": distribution(unrelated),
        "per_video": per_video,
        "matched_by": "published frame with the nearest timestamp",
    }
    return figures, details


def run_conformance(datasets: Path, progress: Progress, *, max_videos: int | None) -> Section:
    section = Section("conformance")
    figures, images = image_conformance(datasets, progress)
    section.figures += figures
    figures, videos = video_conformance(datasets, progress, max_videos=max_videos)
    section.figures += figures
    section.details = {"images": images, "videos": videos}
    return section
