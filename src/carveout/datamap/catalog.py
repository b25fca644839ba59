"""carveout's data map: every table and column the cells store, in dependency order."""

from __future__ import annotations

from carveout.datamap.catalog_exchange import EXCHANGE_LOG, GUEST_VIDEOS
from carveout.datamap.catalog_moderation import (
    MODERATION_BANK_HASHES,
    MODERATION_BANKS,
    MODERATION_DECISIONS,
    MODERATION_REVIEWS,
)
from carveout.datamap.catalog_privacy import (
    CONSENTS,
    PRIVACY_REQUESTS,
    STAFF_ACCESS_LOG,
    STAFF_ROLES,
)
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
    DataMap,
    DomicileRule,
    ErasureAction,
    Retention,
    Table,
    TableKind,
)


def _lookup_column(of: str, category: str) -> Column:
    # Sealed values are randomised, so equality lookups (login, "is this handle taken") go
    # through a keyed hash under the cell's lookup key; it is cleared when the user is erased.
    return Column(
        f"{of}_lookup",
        T.TEXT,
        category,
        f"HMAC-SHA256 of the normalised {of} under the cell's lookup key; NULL once erased",
        nullable=True,
        unique=True,
        max_length=64,
    )


USERS = Table(
    name="users",
    description="Accounts. The user's country is their domicile.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.OWN_COUNTRY,
    subject="id",
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        Column("id", T.ID, "user.unique_id", "user id (UUIDv7)"),
        domicile_column(DomicileRule.OWN_COUNTRY),
        Column(
            "handle",
            T.TEXT,
            "user.account.username",
            "public handle (sealed); NULL once erased",
            nullable=True,
            max_length=30,
            sealed=True,
        ),
        Column(
            "display_name",
            T.TEXT,
            "user.name",
            "name shown on the profile (sealed); NULL once erased",
            nullable=True,
            max_length=80,
            sealed=True,
        ),
        Column(
            "email",
            T.TEXT,
            "user.contact.email",
            "login and contact address (sealed); NULL once erased",
            nullable=True,
            max_length=254,
            sealed=True,
        ),
        Column(
            "birth_year",
            T.INT,
            "user.demographic.date_of_birth",
            "year of birth (sealed)",
            nullable=True,
            sealed=True,
        ),
        Column(
            "password_hash",
            T.TEXT,
            "user.authorization.credentials",
            "argon2id hash; empty for imported accounts that cannot log in",
        ),
        Column("status", T.TEXT, OPS, "active | erasing | erased", max_length=16),
        created_column(),
        # Last: revision 0004 appended them, and the carve compares column order.
        _lookup_column("handle", "user.account.username"),
        _lookup_column("email", "user.contact.email"),
    ),
    indexes=(("domicile",),),
)

SESSIONS = Table(
    name="sessions",
    description="Login sessions; the bearer token itself is never stored, only its sha256.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="user_id",
    retention=Retention(30, "deleted 30 days after expiry", column="expires_at"),
    columns=(
        id_column(),
        domicile_column(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "session owner", references="users.id"),
        Column(
            "token_hash",
            T.TEXT,
            "user.authorization.credentials",
            "sha256 of the token",
            unique=True,
            max_length=64,
        ),
        created_column(),
        Column("expires_at", T.TIMESTAMP, OPS, "expiry (Unix ms)"),
    ),
    indexes=(("user_id",),),
)

BLOBS = Table(
    name="blobs",
    description="Media files, content-addressed; one row per (file, domicile) so each copy "
    "of a file knows the jurisdiction it belongs to.",
    kind=TableKind.CONTENT,
    domicile_rule=DomicileRule.CREATOR,
    subject="owner_id",
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        id_column(),
        domicile_column(DomicileRule.CREATOR),
        Column(
            "sha256",
            T.TEXT,
            "user.content.public",
            "content address in the blob store",
            blob_ref=True,
            max_length=64,
        ),
        Column("size_bytes", T.BIGINT, OPS, "file size"),
        Column("content_type", T.TEXT, OPS, "MIME type", max_length=100),
        Column("owner_id", T.ID, "user.unique_id", "uploader", references="users.id"),
        created_column(),
    ),
    uniques=(("sha256", "domicile"),),
    indexes=(("owner_id",),),
)

VIDEOS = Table(
    name="videos",
    description="Uploaded videos; public content domiciled with their creator.",
    kind=TableKind.CONTENT,
    domicile_rule=DomicileRule.CREATOR,
    subject="creator_id",
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        id_column(),
        domicile_column(DomicileRule.CREATOR),
        Column("creator_id", T.ID, "user.unique_id", "creator", references="users.id"),
        Column("caption", T.TEXT, "user.content.public", "caption text", max_length=2200),
        Column("hashtags", T.JSON, "user.content.public", "JSON list of hashtags"),
        Column("category", T.TEXT, "user.content.public", "content category", max_length=100),
        Column("duration_ms", T.BIGINT, OPS, "duration"),
        Column("width", T.INT, OPS, "frame width in pixels"),
        Column("height", T.INT, OPS, "frame height in pixels"),
        Column("blob_id", T.ID, OPS, "media file", references="blobs.id"),
        Column(
            "status", T.TEXT, OPS, "processing | published | restricted | rejected", max_length=16
        ),
        Column(
            "external_ref",
            T.TEXT,
            OPS,
            "origin in an imported dataset (e.g. kuairec:42)",
            nullable=True,
            max_length=64,
        ),
        created_column(),
        # Last: revision 0005 appended it, and the carve compares column order.
        Column(
            "origin_cell",
            T.TEXT,
            OPS,
            "guest content: the cell this read-only copy came from; NULL for the cell's own",
            nullable=True,
            max_length=64,
        ),
    ),
    indexes=(("creator_id",), ("status", "created_at"), ("external_ref",)),
)

VIDEO_RESTRICTIONS = Table(
    name="video_restrictions",
    description="Jurisdictions in which a video is not available.",
    kind=TableKind.CONTENT,
    domicile_rule=DomicileRule.CONTENT,
    retention=Retention(None, "kept while the video exists"),
    columns=(
        id_column(),
        domicile_column(DomicileRule.CONTENT),
        Column("video_id", T.ID, OPS, "restricted video", references="videos.id"),
        Column("jurisdiction", T.TEXT, OPS, "where it is unavailable", max_length=2),
        Column("reason", T.TEXT, OPS, "why", max_length=500),
        created_column(),
    ),
    uniques=(("video_id", "jurisdiction"),),
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

CARVE_CHANGES = Table(
    name="carve_changes",
    description="Change capture on a carve's source: one row per write to a moving row, "
    "appended by triggers in the writing transaction. Applying a change re-reads the row, so "
    "applying it twice is harmless.",
    kind=TableKind.SYSTEM,
    domicile_rule=DomicileRule.CONTENT,
    primary_key="seq",
    retention=Retention(None, "dropped when the carve is purged or aborted"),
    columns=(
        Column("seq", T.BIGINT, OPS, "capture position, strictly increasing"),
        Column("table_name", T.TEXT, OPS, "table written", max_length=64),
        Column("row_pk", T.TEXT, OPS, "primary key of the row written", max_length=64),
        Column("domicile", T.TEXT, "user.location.country", "the row's domicile", max_length=2),
        Column("op", T.TEXT, OPS, "insert | update | delete", max_length=8),
    ),
)

CARVE_STATE = Table(
    name="carve_state",
    description="A carve's saved progress on its target: phase, copy cursors, applied capture "
    "position; written in the same transaction as the rows it describes.",
    kind=TableKind.SYSTEM,
    domicile_rule=DomicileRule.CONTENT,
    primary_key="key",
    retention=Retention(None, "kept as the carve's record"),
    columns=(
        Column("key", T.TEXT, OPS, "what the value records", max_length=128),
        Column("value", T.TEXT, OPS, "JSON value"),
        Column("updated_at", T.TIMESTAMP, OPS, "last change (Unix ms)"),
    ),
)

DATA_MAP = DataMap(
    tables=(
        USERS,
        SESSIONS,
        BLOBS,
        VIDEOS,
        VIDEO_RESTRICTIONS,
        FOLLOWS,
        LIKES,
        COMMENTS,
        EVENTS,
        VIDEO_STATS,
        MODERATION_BANKS,
        MODERATION_BANK_HASHES,
        MODERATION_DECISIONS,
        MODERATION_REVIEWS,
        CONSENTS,
        PRIVACY_REQUESTS,
        STAFF_ACCESS_LOG,
    ),
    system=(CARVE_CHANGES, CARVE_STATE, STAFF_ROLES, GUEST_VIDEOS, EXCHANGE_LOG),
)
