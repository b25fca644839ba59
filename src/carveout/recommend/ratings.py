"""Watch-ratio ratings: the `user_id,video_id,watch_ratio` file format and its per-user split."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carveout.core import InvalidInput

COLUMNS = ("user_id", "video_id", "watch_ratio")
LIKED_RATIO = 2.0  # KuaiRec's usual "liked" cut on watch_ratio
TRAIN_SHARE = 60 / 83  # the protocol: 60 of each user's 83 videos train, 23 test


@dataclass(frozen=True)
class Ratings:
    """Parallel arrays, one entry per (user, video) watch."""

    users: np.ndarray  # int64
    videos: np.ndarray  # int64
    ratios: np.ndarray  # float64, >= 0

    def __len__(self) -> int:
        return int(self.users.size)

    def take(self, rows: np.ndarray) -> Ratings:
        return Ratings(self.users[rows], self.videos[rows], self.ratios[rows])

    def concat(self, other: Ratings) -> Ratings:
        return Ratings(
            np.concatenate([self.users, other.users]),
            np.concatenate([self.videos, other.videos]),
            np.concatenate([self.ratios, other.ratios]),
        )


def read_ratings(path: Path) -> Ratings:
    """Read a watch-ratio CSV; a missing file, a missing column or a bad value is an error."""
    if not path.is_file():
        raise InvalidInput(
            f"{path}: not found (a CSV with columns {', '.join(COLUMNS)}, e.g. KuaiRec's "
            "watch_ratio.csv from kuairec.com)"
        )
    users: list[int] = []
    videos: list[int] = []
    ratios: list[float] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                users.append(int(row["user_id"]))
                videos.append(int(row["video_id"]))
                ratios.append(float(row["watch_ratio"]))
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"{path}:{line}: not a user_id,video_id,watch_ratio row"
                ) from None
    out = Ratings(
        np.array(users, dtype=np.int64),
        np.array(videos, dtype=np.int64),
        np.array(ratios, dtype=np.float64),
    )
    if len(out) == 0:
        raise InvalidInput(f"{path}: no rows")
    if not np.all(np.isfinite(out.ratios)) or np.any(out.ratios < 0):
        raise InvalidInput(f"{path}: watch_ratio must be finite and >= 0")
    return out


def split_per_user(
    ratings: Ratings, seed: int, train_share: float = TRAIN_SHARE
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test): each user's rows shuffled with `seed`, the first share trains.

    Every user keeps at least one row on each side when they have two or more rows."""
    gen = np.random.default_rng(seed)
    order = np.lexsort((gen.random(len(ratings)), ratings.users))
    users = ratings.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, users.size])
    n_train = np.clip(np.rint(counts * train_share).astype(np.int64), 1, np.maximum(counts - 1, 1))
    rank = np.arange(users.size) - np.repeat(starts, counts)
    is_train = rank < np.repeat(n_train, counts)
    return np.sort(order[is_train]), np.sort(order[~is_train])
