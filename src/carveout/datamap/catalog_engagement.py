"""The data map's engagement tables: what users do with videos and each other (follows, likes,
comments, interaction events) and the per-video counters derived from it."""

from __future__ import annotations

from carveout.datamap.columns import (
    KEEP_WHILE_ACCOUNT,
    OPS,
    T,
    created_column,
    domicile_column,
    id_column,
)
from carveout.datamap.model import (
    Column,
    DomicileRule,
    ErasureAction,
    Retention,
    Table,
    TableKind,
)

FOLLOWS = Table(
    name="follows",
    description="Who follows whom; domiciled with the follower. The followee may live in "
    "another cell after a carve: the id is then an opaque reference.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="follower_id",
    other_subjects=("followee_id",),
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        id_column(),
        domicile_column(DomicileRule.ACTOR),
        Column("follower_id", T.ID, "user.unique_id", "who follows", references="users.id"),
        Column(
            "followee_id", T.ID, "user.social.connection", "who is followed", references="users.id"
        ),
        created_column(),
    ),
    uniques=(("follower_id", "followee_id"),),
    indexes=(("followee_id",),),
)

LIKES = Table(
    name="likes",
    description="Likes of videos; domiciled with the user who liked.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="user_id",
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        id_column(),
        domicile_column(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "who liked", references="users.id"),
        Column("video_id", T.ID, "user.behavior.like", "liked video", references="videos.id"),
        created_column(),
    ),
    uniques=(("user_id", "video_id"),),
    indexes=(("video_id",),),
)

COMMENTS = Table(
    name="comments",
    description="Public comments on videos; domiciled with the commenter.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="user_id",
    erasure=ErasureAction.ANONYMISE,
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        id_column(),
        domicile_column(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "author", references="users.id"),
        Column("video_id", T.ID, OPS, "video commented on", references="videos.id"),
        Column(
            "body",
            T.TEXT,
            "user.content.public",
            "comment text (sealed: free text the user wrote); NULL once anonymised",
            nullable=True,
            max_length=2000,
            sealed=True,
        ),
        Column("status", T.TEXT, OPS, "visible | restricted | hidden | removed", max_length=16),
        created_column(),
    ),
    indexes=(("video_id", "id"), ("user_id",)),
)

EVENTS = Table(
    name="events",
    description="Interaction events (impression, watch, like, share, skip, comment) that feed "
    "the recommender; domiciled with the acting user.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="user_id",
    retention=Retention(365, "raw events deleted after 365 days; aggregates kept"),
    columns=(
        id_column(),
        domicile_column(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "acting user", references="users.id"),
        Column("video_id", T.ID, "user.behavior.watch", "video acted on", references="videos.id"),
        Column(
            "kind",
            T.TEXT,
            "user.behavior.watch",
            "impression|watch|like|share|skip|comment",
            max_length=16,
        ),
        Column(
            "watched_ms",
            T.BIGINT,
            "user.behavior.watch",
            "milliseconds watched (watch only)",
            nullable=True,
        ),
        created_column(),
    ),
    indexes=(("user_id", "kind", "video_id"), ("video_id",), ("created_at",)),
)

VIDEO_STATS = Table(
    name="video_stats",
    description="Per-video interaction counters, maintained as events arrive. Derived from the "
    "cell's own events; a carved cell recomputes them from its own data.",
    kind=TableKind.DERIVED,
    domicile_rule=DomicileRule.CONTENT,
    primary_key="video_id",
    retention=Retention(None, "kept while the video exists"),
    columns=(
        Column("video_id", T.ID, OPS, "the video", references="videos.id"),
        domicile_column(DomicileRule.CONTENT),
        Column("impressions", T.BIGINT, OPS, "impression events"),
        Column("watches", T.BIGINT, OPS, "watch events"),
        Column("watched_ms", T.BIGINT, OPS, "sum of watched milliseconds"),
        Column("watch_ratio_sum", T.FLOAT, OPS, "sum of watched_ms / duration over watches"),
        Column("likes", T.BIGINT, OPS, "like events"),
        Column("comments", T.BIGINT, OPS, "comment events"),
        Column("shares", T.BIGINT, OPS, "share events"),
        Column("skips", T.BIGINT, OPS, "skip events"),
        Column("popularity", T.FLOAT, OPS, "shrunk mean watch ratio, the simple feed's ranking"),
        Column("updated_at", T.TIMESTAMP, OPS, "last change (Unix ms)"),
    ),
    indexes=(("popularity", "video_id"),),
)
