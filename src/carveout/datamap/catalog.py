"""carveout's data map: every table and column the cells store, in dependency order."""

from __future__ import annotations

from carveout.datamap.catalog_carve import CARVE_CHANGES, CARVE_STATE
from carveout.datamap.catalog_engagement import COMMENTS, EVENTS, FOLLOWS, LIKES, VIDEO_STATS
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
