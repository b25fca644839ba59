"""carveout's data map: every table and column the cells store, in dependency order."""

from __future__ import annotations

from carveout.datamap.model import (
    Column,
    ColumnType,
    DataMap,
    DomicileRule,
    ErasureAction,
    Retention,
    Table,
    TableKind,
)

T = ColumnType
OPS = "system.operations"
KEEP_WHILE_ACCOUNT = Retention(None, "kept while the account exists; erased with it")


def _id(description: str = "row id (UUIDv7)") -> Column:
    return Column("id", T.ID, OPS, description)


def _domicile(rule: DomicileRule) -> Column:
    return Column(
        "domicile", T.TEXT, "user.location.country", f"jurisdiction: {rule.value}", max_length=2
    )


def _created() -> Column:
    return Column("created_at", T.TIMESTAMP, OPS, "when the row was written (Unix ms)")


USERS = Table(
    name="users",
    description="Accounts. The user's country is their domicile.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.OWN_COUNTRY,
    subject="id",
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        Column("id", T.ID, "user.unique_id", "user id (UUIDv7)"),
        _domicile(DomicileRule.OWN_COUNTRY),
        Column(
            "handle",
            T.TEXT,
            "user.account.username",
            "public handle, unique in every cell",
            unique=True,
            max_length=30,
        ),
        Column("display_name", T.TEXT, "user.name", "name shown on the profile", max_length=80),
        Column(
            "email",
            T.TEXT,
            "user.contact.email",
            "login and contact address",
            unique=True,
            max_length=254,
        ),
        Column(
            "birth_year", T.INT, "user.demographic.date_of_birth", "year of birth", nullable=True
        ),
        Column(
            "password_hash",
            T.TEXT,
            "user.authorization.credentials",
            "argon2id hash; empty for imported accounts that cannot log in",
        ),
        Column("status", T.TEXT, OPS, "active | erased", max_length=16),
        _created(),
    ),
    indexes=(("domicile",),),
)

SESSIONS = Table(
    name="sessions",
    description="Login sessions; the bearer token itself is never stored, only its sha256.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="user_id",
    retention=Retention(30, "deleted 30 days after expiry"),
    columns=(
        _id(),
        _domicile(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "session owner", references="users.id"),
        Column(
            "token_hash",
            T.TEXT,
            "user.authorization.credentials",
            "sha256 of the token",
            unique=True,
            max_length=64,
        ),
        _created(),
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
        _id(),
        _domicile(DomicileRule.CREATOR),
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
        _created(),
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
        _id(),
        _domicile(DomicileRule.CREATOR),
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
        _created(),
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
        _id(),
        _domicile(DomicileRule.CONTENT),
        Column("video_id", T.ID, OPS, "restricted video", references="videos.id"),
        Column("jurisdiction", T.TEXT, OPS, "where it is unavailable", max_length=2),
        Column("reason", T.TEXT, OPS, "why", max_length=500),
        _created(),
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
        _id(),
        _domicile(DomicileRule.ACTOR),
        Column("follower_id", T.ID, "user.unique_id", "who follows", references="users.id"),
        Column(
            "followee_id", T.ID, "user.social.connection", "who is followed", references="users.id"
        ),
        _created(),
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
        _id(),
        _domicile(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "who liked", references="users.id"),
        Column("video_id", T.ID, "user.behavior.like", "liked video", references="videos.id"),
        _created(),
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
        _id(),
        _domicile(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "author", references="users.id"),
        Column("video_id", T.ID, OPS, "video commented on", references="videos.id"),
        Column("body", T.TEXT, "user.content.public", "comment text", max_length=2000),
        Column("status", T.TEXT, OPS, "visible | hidden | removed", max_length=16),
        _created(),
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
        _id(),
        _domicile(DomicileRule.ACTOR),
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
        _created(),
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
        _domicile(DomicileRule.CONTENT),
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

# A bank belongs to the jurisdiction whose law or terms it enforces; no DomicileRule names that
# yet, so CONTENT (the nearest: it describes content) is used and the column says exactly what.
_BANK_DOMICILE = Column(
    "domicile",
    T.TEXT,
    "user.location.country",
    "jurisdiction: the jurisdiction whose rules the bank enforces",
    max_length=2,
)

MODERATION_BANKS = Table(
    name="moderation_banks",
    description="Hash banks: named lists of PDQ hashes of media that must not be published "
    "(everywhere, or in the bank's jurisdiction when its action is restrict).",
    kind=TableKind.CONTENT,
    domicile_rule=DomicileRule.CONTENT,
    retention=Retention(None, "kept until an operator deletes the bank"),
    columns=(
        _id(),
        _BANK_DOMICILE,
        Column("name", T.TEXT, OPS, "bank name, unique in the cell", unique=True, max_length=64),
        Column("description", T.TEXT, OPS, "what the bank holds", max_length=500),
        Column("action", T.TEXT, OPS, "reject | hold | restrict on a match", max_length=16),
        Column("ground", T.TEXT, OPS, "illegal | terms (DSA decision ground)", max_length=16),
        Column("category", T.TEXT, OPS, "DSA statement category", max_length=80),
        Column("enabled", T.BOOL, OPS, "whether uploads are matched against it"),
        _created(),
        Column("updated_at", T.TIMESTAMP, OPS, "last change (Unix ms)"),
    ),
)

MODERATION_BANK_HASHES = Table(
    name="moderation_bank_hashes",
    description="PDQ hashes held by a bank; domiciled with their bank.",
    kind=TableKind.CONTENT,
    domicile_rule=DomicileRule.CONTENT,
    retention=Retention(None, "kept while the bank exists"),
    columns=(
        _id(),
        Column(
            "domicile",
            T.TEXT,
            "user.location.country",
            "jurisdiction: the bank's",
            max_length=2,
        ),
        Column("bank_id", T.ID, OPS, "bank", references="moderation_banks.id"),
        Column("pdq", T.TEXT, OPS, "PDQ hash, 64 lower-case hex digits", max_length=64),
        Column("note", T.TEXT, OPS, "provenance, e.g. a ThreatExchange id", max_length=200),
        Column("enabled", T.BOOL, OPS, "disabled hashes no longer match"),
        _created(),
    ),
    uniques=(("bank_id", "pdq"),),
)

MODERATION_DECISIONS = Table(
    name="moderation_decisions",
    description="Moderation decisions with the EU DSA statement-of-reasons fields; about the "
    "content's creator, domiciled with the content.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.CONTENT,
    subject="subject_id",
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        _id(),
        _domicile(DomicileRule.CONTENT),
        Column(
            "subject_id", T.ID, "user.unique_id", "creator of the content", references="users.id"
        ),
        Column("target_kind", T.TEXT, OPS, "video | comment", max_length=16),
        Column("target_id", T.ID, OPS, "the video or comment decided on"),
        Column(
            "visibility",
            T.TEXT,
            OPS,
            "published | restricted | held | rejected (DSA decision_visibility)",
            max_length=16,
        ),
        Column(
            "ground", T.TEXT, OPS, "none | illegal | terms (DSA decision_ground)", max_length=16
        ),
        Column("rule", T.TEXT, OPS, "law or terms clause applied", max_length=200),
        Column("category", T.TEXT, OPS, "DSA statement category", max_length=80),
        Column("territorial_scope", T.JSON, OPS, "JSON list of jurisdictions affected"),
        Column("automated_detection", T.BOOL, OPS, "found by automated means"),
        Column("automated_decision", T.BOOL, OPS, "decided without a human"),
        Column("source", T.TEXT, OPS, "automated | report | appeal | reviewer", max_length=16),
        Column("facts", T.TEXT, "user.content.public", "facts and circumstances relied on"),
        Column("signals", T.JSON, OPS, "JSON: bank matches, classifier scores, thresholds"),
        Column(
            "reviewer_id",
            T.ID,
            "user.unique_id",
            "moderator who decided",
            nullable=True,
            references="users.id",
        ),
        Column("supersedes", T.ID, OPS, "decision this one replaces", nullable=True),
        Column("content_date", T.TIMESTAMP, OPS, "when the content was posted (Unix ms)"),
        _created(),
    ),
    indexes=(("target_id", "created_at"),),
)

MODERATION_REVIEWS = Table(
    name="moderation_reviews",
    description="The human review queue: held uploads, user reports and creator appeals; "
    "domiciled with the content, about its creator and whoever filed the item.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.CONTENT,
    subject="subject_id",
    other_subjects=("filed_by",),
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        _id(),
        _domicile(DomicileRule.CONTENT),
        Column(
            "subject_id", T.ID, "user.unique_id", "creator of the content", references="users.id"
        ),
        Column("origin", T.TEXT, OPS, "automated | report | appeal", max_length=16),
        Column("target_kind", T.TEXT, OPS, "video | comment", max_length=16),
        Column("target_id", T.ID, OPS, "the video or comment to review"),
        Column("decision_id", T.ID, OPS, "decision under review", nullable=True),
        Column(
            "filed_by",
            T.ID,
            "user.unique_id",
            "reporter or appellant",
            nullable=True,
            references="users.id",
        ),
        Column(
            "note", T.TEXT, "user.content.public", "reason given by who filed it", max_length=1000
        ),
        Column("status", T.TEXT, OPS, "open | closed", max_length=16),
        Column("outcome_id", T.ID, OPS, "the reviewer's decision", nullable=True),
        _created(),
        Column("closed_at", T.TIMESTAMP, OPS, "when a reviewer closed it", nullable=True),
    ),
    indexes=(("status", "created_at"), ("target_id",)),
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
    ),
    system=(CARVE_CHANGES, CARVE_STATE),
)
