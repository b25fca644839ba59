"""The moderation bench's media: ThreatExchange images and videos, their published hashes, and a
long upload built from the sample videos."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from carveout.bench.api import BenchError

PDQ_DIR = "pdq-threatexchange"
NEEDED = (
    f"{PDQ_DIR}/images",
    f"{PDQ_DIR}/videos",
    f"{PDQ_DIR}/vpdq-sample-hashes",
)
PUBLISHER = "github.com/facebook/ThreatExchange (pdq/ and vpdq/ test data, BSD licence)"
# The test images that are distinct pictures (the other test images are variants of the bridge:
# blurred, shrunk, rotated, converted to other colour modes). Two LabelMe images and small.jpg
# are left out by the bench itself: PDQ rates them below quality 50 (featureless).
DISTINCT = (
    "reg-test-input/labelme-subset/*.jpg",
    "reg-test-input/dih/bridge-1-original.jpg",
    "reg-test-input/pen-and-coaster.png",
    "reg-test-input/exif-rotn/exif-rotn-1.jpg",
    "misc-images/c.png",
    "misc-images/small.jpg",
    "misc-images/wee.jpg",
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
FPS = 30


@dataclass(frozen=True)
class Published:
    """A published PDQ hash of a test image, from one of ThreatExchange's expected-hash lists."""

    listed: str  # the path as the list writes it
    path: Path  # where the image is in the shared data (may be missing)
    hex: str
    source: str  # the list's file name

    @property
    def group(self) -> str:
        """Which picture it shows: every bridge variant is one picture."""
        return "bridge" if "bridge" in self.listed or self.path.stem == "b" else self.path.stem


@dataclass(frozen=True)
class RefFrame:
    frame: int
    quality: int
    hex: str
    seconds: float


@dataclass(frozen=True)
class SampleVideo:
    path: Path
    reference: tuple[RefFrame, ...]  # vPDQ's published hash of every frame

    @property
    def family(self) -> str:
        """The clip it was made from (chair, pattern, doorknob, ...): variants share one."""
        return self.path.stem.split("-")[0]


def check_present(datasets: Path) -> None:
    missing = [n for n in NEEDED if not (datasets / n).is_dir()]
    if missing:
        raise BenchError(
            f"missing {', '.join(missing)} under {datasets} (set --datasets or "
            f"CARVEOUT_DATASETS); published at {PUBLISHER}"
        )


def _local(images: Path, listed: str) -> Path:
    # The lists name files as laid out in ThreatExchange's repository, not as copied here.
    if "reg_test/input/" in listed:
        return images / "reg-test-input" / listed.split("reg_test/input/", 1)[1]
    if "/data/" in listed:
        return images / listed.split("/data/", 1)[1]
    return images / listed


def published_images(datasets: Path) -> list[Published]:
    """Every (image, published PDQ hash) pair of the expected-hash lists, deduplicated. Lines
    holding other signal types (the video MD5s) are skipped."""
    base = datasets / PDQ_DIR
    found: dict[tuple[str, str], Published] = {}
    for listing in sorted(base.glob("expected_pdq_*.csv")):
        for line in listing.read_text(encoding="utf-8").splitlines():
            fields = [f.strip() for f in line.split(",")]
            hexes = [f.lower() for f in fields if _HEX64.match(f.lower())]
            paths = [f for f in fields if "/" in f]
            if len(hexes) != 1 or len(paths) != 1:
                continue
            local = _local(base / "images", paths[0])
            key = (str(local), hexes[0])
            found.setdefault(key, Published(paths[0], local, hexes[0], listing.name))
    return sorted(found.values(), key=lambda p: (str(p.path), p.hex))


def distinct_images(datasets: Path) -> list[Path]:
    images = datasets / PDQ_DIR / "images"
    found: list[Path] = []
    for pattern in DISTINCT:
        found.extend(sorted(images.glob(pattern)))
    return found


def _reference(path: Path) -> tuple[RefFrame, ...]:
    frames = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit() or not _HEX64.match(fields[2]):
            continue
        frames.append(RefFrame(int(fields[0]), int(fields[1]), fields[2], float(fields[3])))
    return tuple(frames)


def sample_videos(datasets: Path) -> list[SampleVideo]:
    """The sample videos that have a published full-size vPDQ hash list (not the 128x128 ones)."""
    base = datasets / PDQ_DIR
    found = []
    for path in sorted((base / "videos").glob("*.mp4")):
        listing = base / "vpdq-sample-hashes" / f"{path.stem}.txt"
        if listing.exists():
            found.append(SampleVideo(path, _reference(listing)))
    return found


def concat_video(
    clips: list[Path], out: Path, *, seconds: float, width: int, height: int, seed: int
) -> Path:
    """Clips drawn in a seeded order, every frame scaled to width x height, re-encoded as one
    H.264 stream at 30 fps until `seconds` are filled (what a phone upload looks like)."""
    if not clips:
        raise BenchError("no sample video to build the long upload from")
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    wanted = round(seconds * FPS)
    written = 0
    with av.open(str(out), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        while written < wanted:
            with av.open(str(rng.choice(clips))) as source:
                for frame in source.decode(source.streams.video[0]):
                    scaled = frame.reformat(width=width, height=height, format="yuv420p")
                    scaled.pts, scaled.time_base = written, Fraction(1, FPS)
                    container.mux(stream.encode(scaled))
                    written += 1
                    if written >= wanted:
                        break
        container.mux(stream.encode())
    return out
