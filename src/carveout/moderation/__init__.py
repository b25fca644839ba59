"""Moderation: PDQ/vPDQ hash banks, a trained text classifier, per-jurisdiction rules, review."""

from carveout.moderation.banks import (
    BankMatcher,
    add_hashes,
    create_bank,
    disable_hash,
    get_bank,
    list_banks,
    matcher,
    set_enabled,
)
from carveout.moderation.classifier import TextModel, cell_model, load_model
from carveout.moderation.comments import (
    CommentScreening,
    comment_restricted_in,
    record_comment_decision,
    screen_comment,
)
from carveout.moderation.hashlist import ListedHash, parse_hash_list
from carveout.moderation.models import (
    Action,
    Bank,
    BankMatch,
    Decision,
    Ground,
    Source,
    TargetKind,
    Verdict,
    Visibility,
)
from carveout.moderation.pdq import PdqHash, hamming, hash_image, hash_pixels, parse_hex
from carveout.moderation.review import (
    ReviewItem,
    appeal,
    decisions_about,
    queue,
    report,
    resolve,
)
from carveout.moderation.rules import RULES_FILE, Rules, load_rules
from carveout.moderation.service import Moderated, screen_text, upload_video
from carveout.moderation.vpdq import FrameHash, VideoHash, hash_video

__all__ = [
    "RULES_FILE",
    "Action",
    "Bank",
    "BankMatch",
    "BankMatcher",
    "CommentScreening",
    "Decision",
    "FrameHash",
    "Ground",
    "ListedHash",
    "Moderated",
    "PdqHash",
    "ReviewItem",
    "Rules",
    "Source",
    "TargetKind",
    "TextModel",
    "Verdict",
    "VideoHash",
    "Visibility",
    "add_hashes",
    "appeal",
    "cell_model",
    "comment_restricted_in",
    "create_bank",
    "decisions_about",
    "disable_hash",
    "get_bank",
    "hamming",
    "hash_image",
    "hash_pixels",
    "hash_video",
    "list_banks",
    "load_model",
    "load_rules",
    "matcher",
    "parse_hash_list",
    "parse_hex",
    "queue",
    "record_comment_decision",
    "report",
    "resolve",
    "screen_comment",
    "screen_text",
    "set_enabled",
    "upload_video",
]
