"""Recommendation: the For You feed and trending (a simple popularity ranking for now)."""

from carveout.recommend.models import FeedItem
from carveout.recommend.popular import feed
from carveout.recommend.trending import trending

__all__ = ["FeedItem", "feed", "trending"]
