"""What a feed returns: videos with the reason each was chosen."""

from __future__ import annotations

from dataclasses import dataclass

from carveout.videos import Video


@dataclass(frozen=True)
class FeedItem:
    video: Video
    source: str  # which candidate source chose it: "popular", "trending", ...
    score: float
