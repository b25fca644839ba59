"""What "typical" means in the privacy bench: medians of the real KuaiRec users; and the heavy one.

The typical user is the median user of KuaiRec's fully observed watch matrix: as many watches
as they have rows (each an impression and a watch event, as the KuaiRec import writes them),
likes by the import's rule (watch_ratio >= 2.0), and the median follow and fan counts that
KuaiRec's user features report for those same users. KuaiRec has no comments, so the typical
user's comment count is an assumption, labelled so. The heavy user is the issue's: 10,000
events, 500 comments, 50 videos, and the 99th percentile of follows and fans.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from carveout.datasets.kuairec_files import (
    DURATIONS_CSV,
    USERS_CSV,
    WATCH_CSV,
    read_durations,
    read_watches,
)
from carveout.datasets.kuairec_rows import LIKED_RATIO
from carveout.datasets.sources import KUAIRAND, KUAIREC, DatasetFile, require

ITEMS_CSV = "kuairec/item_categories.csv"
NEEDED: tuple[DatasetFile, ...] = (
    DatasetFile(WATCH_CSV, KUAIREC),
    DatasetFile(USERS_CSV, KUAIREC),
    DatasetFile(ITEMS_CSV, KUAIREC),
    DatasetFile(DURATIONS_CSV, KUAIRAND),
)
# No public KuaiRec file counts comments: these are assumptions, and the report says so.
ASSUMED_COMMENTS_PER_USER = 2
CONSENTS_PER_USER = 2  # personalisation and training, each answered once
HEAVY_EVENTS, HEAVY_COMMENTS, HEAVY_VIDEOS = 10_000, 500, 50
HEAVY_PERCENTILE = 99


@dataclass(frozen=True)
class Profile:
    """How much data one measured user holds, table by table."""

    name: str
    watches: int  # each one impression and one watch event
    likes: int  # a likes row and a like event each, on distinct videos
    comments: int  # a comments row and a comment event each
    videos: int  # uploads: a media file, a blobs row, a videos row, a moderation decision
    follows: int  # users they follow
    fans: int  # users who follow them
    consents: int = CONSENTS_PER_USER

    @property
    def events(self) -> int:
        return 2 * self.watches + self.likes + self.comments

    def within(self, users: int) -> Profile:
        """The profile with follows and fans capped at a population of `users` (--quick)."""
        return replace(self, follows=min(self.follows, users), fans=min(self.fans, users))

    def as_json(self) -> dict[str, int]:
        return {
            "events": self.events,
            "watches": self.watches,
            "likes": self.likes,
            "comments": self.comments,
            "videos": self.videos,
            "follows": self.follows,
            "fans": self.fans,
            "consents": self.consents,
        }


@dataclass(frozen=True)
class Calibration:
    """The real distributions the synthetic population and the profiles are drawn from."""

    watch_users: np.ndarray  # KuaiRec user id of each watch_ratio.csv row
    watch_videos: np.ndarray  # KuaiRec video id of each row
    watch_ratios: np.ndarray
    follows: np.ndarray  # follow_user_num of the users in the watch matrix
    fans: np.ndarray  # fans_user_num of the same users
    authors: np.ndarray  # is_video_author (0/1) of the same users
    videos_per_user: float  # KuaiRec's videos / users
    durations: np.ndarray  # KuaiRand's real video durations (ms)

    @property
    def user_rows(self) -> list[np.ndarray]:
        """Row positions of each real watch-matrix user, in user-id order."""
        order = np.argsort(self.watch_users, kind="stable")
        _, starts = np.unique(self.watch_users[order], return_index=True)
        return np.split(order, starts[1:])

    @property
    def author_share(self) -> float:
        return float(np.mean(self.authors)) if self.authors.size else 0.0

    @property
    def like_rate(self) -> float:
        return float(np.mean(self.watch_ratios >= LIKED_RATIO))

    def typical(self) -> Profile:
        per_user = self.user_rows
        watches = int(np.median([len(r) for r in per_user]))
        likes = int(np.median([int(np.sum(self.watch_ratios[r] >= LIKED_RATIO)) for r in per_user]))
        return Profile(
            "typical",
            watches=watches,
            likes=likes,
            comments=ASSUMED_COMMENTS_PER_USER,
            videos=int(np.median(self.authors)),
            follows=int(np.median(self.follows)),
            fans=int(np.median(self.fans)),
        )

    def heavy(self) -> Profile:
        # 10,000 events in all: 500 comment events, then watches (impression + watch) and likes
        # at KuaiRec's real like rate.
        rest = HEAVY_EVENTS - HEAVY_COMMENTS
        watches = int(rest / (2 + self.like_rate))
        return Profile(
            "heavy",
            watches=watches,
            likes=rest - 2 * watches,
            comments=HEAVY_COMMENTS,
            videos=HEAVY_VIDEOS,
            follows=int(np.percentile(self.follows, HEAVY_PERCENTILE)),
            fans=int(np.percentile(self.fans, HEAVY_PERCENTILE)),
        )

    def as_json(self) -> dict[str, Any]:
        typical = self.typical()
        return {
            "source": f"{WATCH_CSV}, {USERS_CSV}, {ITEMS_CSV} (KuaiRec), "
            f"{DURATIONS_CSV} (KuaiRand)",
            "watch_matrix_users": len(self.user_rows),
            "typical_watches": f"median rows per user in {WATCH_CSV}: {typical.watches}",
            "typical_likes": f"median rows with watch_ratio >= {LIKED_RATIO} per user: "
            f"{typical.likes}",
            "typical_follows": f"median follow_user_num of those users: {typical.follows}",
            "typical_fans": f"median fans_user_num of those users: {typical.fans}",
            "typical_videos": f"median is_video_author of those users (share "
            f"{self.author_share:.3f}): {typical.videos}",
            "typical_comments": f"ASSUMED {ASSUMED_COMMENTS_PER_USER} (no comment counts in "
            "KuaiRec)",
            "heavy": f"{HEAVY_EVENTS:,} events, {HEAVY_COMMENTS} comments, {HEAVY_VIDEOS} videos "
            f"(issue 6); likes at KuaiRec's like rate {self.like_rate:.4f}; follows and fans "
            f"at the {HEAVY_PERCENTILE}th percentile",
            "consents": f"ASSUMED {CONSENTS_PER_USER} per user (both purposes answered once)",
            "videos_per_user": round(self.videos_per_user, 4),
        }


def read_calibration(datasets: Path) -> Calibration:
    require(datasets, NEEDED, "the privacy bench")
    watches = read_watches(datasets / WATCH_CSV)
    in_matrix = set(np.unique(watches.user_ids).tolist())
    follows, fans, authors, users = [], [], [], 0
    with (datasets / USERS_CSV).open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            users += 1
            if int(row["user_id"]) in in_matrix:
                follows.append(int(row["follow_user_num"]))
                fans.append(int(row["fans_user_num"]))
                authors.append(int(row["is_video_author"] == "1"))
    with (datasets / ITEMS_CSV).open(newline="", encoding="utf-8") as fh:
        videos = sum(1 for _ in csv.DictReader(fh))
    return Calibration(
        watch_users=watches.user_ids,
        watch_videos=watches.video_ids,
        watch_ratios=watches.ratios,
        follows=np.array(follows, dtype=np.int64),
        fans=np.array(fans, dtype=np.int64),
        authors=np.array(authors, dtype=np.int64),
        videos_per_user=videos / max(users, 1),
        durations=read_durations(datasets / DURATIONS_CSV),
    )
