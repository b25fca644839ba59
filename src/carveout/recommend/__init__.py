"""Recommendation: the For You feed (trained ranker, online state, fallback) and trending."""

from carveout.recommend.artefact import ArtefactRefused, Manifest
from carveout.recommend.models import FeedItem
from carveout.recommend.popular import feed
from carveout.recommend.service import FALLBACK_SOURCE, for_you, warm
from carveout.recommend.training import train_cell
from carveout.recommend.trending import trending

__all__ = [
    "FALLBACK_SOURCE",
    "ArtefactRefused",
    "FeedItem",
    "Manifest",
    "feed",
    "for_you",
    "train_cell",
    "trending",
    "warm",
]
