"""Reading the KuaiRec import's source files: KuaiRec CSVs, KuaiRand durations, sample mp4s."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from carveout.core import InvalidInput
from carveout.datasets.sources import KUAIRAND, KUAIREC, THREATEXCHANGE, DatasetFile

USERS_CSV = "kuairec/user_features.csv"
VIDEOS_CSV = "kuairec/kuairec_caption_category.csv"
WATCH_CSV = "kuairec/watch_ratio.csv"
DURATIONS_CSV = "kuairand/video_features_basic_pure.csv"
MEDIA_DIR = "pdq-threatexchange/videos"
# The 14 vPDQ conformance clips; named, not globbed, so a seed picks the same file everywhere.
MEDIA_FILES = (
    "chair-19-sd-bar.mp4",
    "chair-20-sd-bar.mp4",
    "chair-22-sd-grey-bar.mp4",
    "chair-22-sd-sepia-bar.mp4",
    "chair-22-with-large-logo-bar.mp4",
    "chair-22-with-small-logo-bar.mp4",
    "chair-orig-22-sd-bar.mp4",
    "doorknob-hd-no-bar.mp4",
    "pattern-hd-no-bar.mp4",
    "pattern-longer-no-bar.mp4",
    "pattern-sd-grey-bar.mp4",
    "pattern-sd-with-large-logo-bar.mp4",
    "pattern-sd-with-small-logo-bar.mp4",
    "test-padded-dimensions.mp4",
)
REQUIRED_FILES: tuple[DatasetFile, ...] = (
    DatasetFile(USERS_CSV, KUAIREC),
    DatasetFile(VIDEOS_CSV, KUAIREC),
    DatasetFile(WATCH_CSV, KUAIREC),
    DatasetFile(DURATIONS_CSV, KUAIRAND),
    *(DatasetFile(f"{MEDIA_DIR}/{name}", THREATEXCHANGE) for name in MEDIA_FILES),
)

MIN_DURATION_MS = 3_000
MAX_DURATION_MS = 600_000


@dataclass(frozen=True)
class Users:
    ids: np.ndarray  # int64, ascending
    is_author: np.ndarray  # bool
    register_days: np.ndarray  # int64


@dataclass(frozen=True)
class VideoMeta:
    video_id: int
    caption: str
    hashtags: list[str]
    category: str


@dataclass(frozen=True)
class Watches:
    user_ids: np.ndarray  # int64
    video_ids: np.ndarray  # int64
    ratios: np.ndarray  # float64


@dataclass(frozen=True)
class Media:
    path: Path
    width: int
    height: int


def _rows(path: Path, text: str | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; a row with the wrong number of fields is an error."""
    with (
        io.StringIO(text, newline="\n")
        if text is not None
        else path.open(newline="", encoding="utf-8")
    ) as source:
        reader = csv.reader(source)
        header = next(reader, None)
        if not header:
            raise InvalidInput(f"{path}: empty file, expected a CSV header")
        for row in reader:
            if len(row) != len(header):
                raise InvalidInput(
                    f"{path}:{reader.line_num}: {len(row)} fields, expected {len(header)}"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))


def _need(path: Path, row: dict[str, str], *names: str) -> None:
    absent = [n for n in names if n not in row]
    if absent:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(absent)}")


def read_users(path: Path) -> Users:
    ids: list[int] = []
    authors: list[bool] = []
    days: list[int] = []
    try:
        for _, row in _rows(path):
            if not ids:
                _need(path, row, "user_id", "is_video_author", "register_days")
            ids.append(int(row["user_id"]))
            authors.append(row["is_video_author"].strip() == "1")
            days.append(max(0, int(float(row["register_days"] or 0))))
    except ValueError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"{path}: duplicate user_id")
    order = np.argsort(np.array(ids, dtype=np.int64), kind="stable")
    return Users(
        ids=np.array(ids, dtype=np.int64)[order],
        is_author=np.array(authors, dtype=bool)[order],
        register_days=np.array(days, dtype=np.int64)[order],
    )


def parse_topic_tag(value: str) -> list[str]:
    """KuaiRec writes hashtag lists as `[a,b,c]` with no quotes; `[]` is none."""
    inner = value.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    tags = (t.strip().strip("'\"").strip() for t in inner.split(","))
    return [t for t in tags if t]


def read_videos(path: Path) -> list[VideoMeta]:
    # Four captions hold a bare CR inside an unquoted field, which the csv module takes for a
    # line end. Lines end at "\n" only: swap each CR for a code point the file lacks, parse,
    # swap back, so the captions keep their real text.
    with path.open(encoding="utf-8", newline="") as fh:  # newline="": keep every CR as read
        text = fh.read()
    stand_in = next(ch for ch in ("\ue000", "\ue001", "\ufdd0", "\ufdd1") if ch not in text)
    out: list[VideoMeta] = []
    try:
        for _, row in _rows(path, text.replace("\r", stand_in)):
            if not out:
                _need(path, row, "video_id", "caption", "topic_tag", "first_level_category_name")
            out.append(
                VideoMeta(
                    video_id=int(row["video_id"]),
                    caption=row["caption"].replace(stand_in, "\r"),
                    hashtags=parse_topic_tag(row["topic_tag"].replace(stand_in, "\r")),
                    category=row["first_level_category_name"].replace(stand_in, "\r"),
                )
            )
    except ValueError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    out.sort(key=lambda v: v.video_id)
    if len({v.video_id for v in out}) != len(out):
        raise InvalidInput(f"{path}: duplicate video_id")
    return out


def read_watches(path: Path) -> Watches:
    users: list[int] = []
    videos: list[int] = []
    ratios: list[float] = []
    try:
        for line, row in _rows(path):
            if not users:
                _need(path, row, "user_id", "video_id", "watch_ratio")
            ratio = float(row["watch_ratio"])
            if not np.isfinite(ratio) or ratio < 0:
                raise InvalidInput(f"{path}:{line}: watch_ratio {ratio} is not a ratio")
            users.append(int(row["user_id"]))
            videos.append(int(row["video_id"]))
            ratios.append(ratio)
    except ValueError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    return Watches(
        user_ids=np.array(users, dtype=np.int64),
        video_ids=np.array(videos, dtype=np.int64),
        ratios=np.array(ratios, dtype=np.float64),
    )


def read_durations(path: Path) -> np.ndarray:
    """KuaiRand's real durations (ms): missing and non-positive dropped, clipped to 3 s..10 min."""
    values: list[float] = []
    first = True
    for _, row in _rows(path):
        if first:
            _need(path, row, "video_duration")
            first = False
        try:
            values.append(float(row["video_duration"]))
        except ValueError:
            continue  # an empty cell: KuaiRand lacks the duration of a few videos
    durations = np.array(values, dtype=np.float64)
    durations = durations[np.isfinite(durations) & (durations > 0)]
    if durations.size == 0:
        raise InvalidInput(f"{path}: no usable video_duration values")
    return np.clip(np.rint(durations), MIN_DURATION_MS, MAX_DURATION_MS).astype(np.int64)


def probe_media(path: Path) -> Media:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidInput(f"{path}: no video stream")
            stream = container.streams.video[0]
            width, height = int(stream.width), int(stream.height)
    except (av.error.FFmpegError, OSError) as exc:
        raise InvalidInput(f"{path}: not a readable video ({exc})") from exc
    if width <= 0 or height <= 0:
        raise InvalidInput(f"{path}: the video has no frame size")
    return Media(path=path, width=width, height=height)
