"""Social: follows, likes and comments."""

from carveout.social.follows import counts, follow, followers, following, unfollow
from carveout.social.models import Comment, ProfileCounts
from carveout.social.reactions import add_comment, comments, delete_comment, like, unlike

__all__ = [
    "Comment",
    "ProfileCounts",
    "add_comment",
    "comments",
    "counts",
    "delete_comment",
    "follow",
    "followers",
    "following",
    "like",
    "unfollow",
    "unlike",
]
