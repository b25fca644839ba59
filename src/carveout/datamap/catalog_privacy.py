"""The data map's privacy tables: consent records, access/erasure requests and staff access."""

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

CONSENTS = Table(
    name="consents",
    description="Consent records, append-only: the newest row per (user, purpose) is in force.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="user_id",
    retention=KEEP_WHILE_ACCOUNT,
    columns=(
        id_column(),
        domicile_column(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "who consented", references="users.id"),
        Column(
            "purpose",
            T.TEXT,
            "user.privacy_preferences",
            "personalisation | training",
            max_length=32,
        ),
        Column("granted", T.BOOL, "user.privacy_preferences", "given (true) or withdrawn"),
        Column(
            "version",
            T.TEXT,
            "user.privacy_preferences",
            "version of the notice the user saw",
            max_length=32,
        ),
        created_column(),
    ),
    indexes=(("user_id", "purpose", "created_at"),),
)

PRIVACY_REQUESTS = Table(
    name="privacy_requests",
    description="Access-export and erasure requests with their progress; an erasure's receipt "
    "is kept as proof that it was done.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.ACTOR,
    subject="user_id",
    erasure=ErasureAction.RETAIN,
    retention=Retention(
        None, "erasure receipts kept as proof of compliance (GDPR Art. 5(2)); they hold ids only"
    ),
    columns=(
        id_column(),
        domicile_column(DomicileRule.ACTOR),
        Column("user_id", T.ID, "user.unique_id", "the data subject", references="users.id"),
        Column("kind", T.TEXT, OPS, "export | erasure", max_length=16),
        Column("status", T.TEXT, OPS, "running | done | failed", max_length=16),
        Column("requested_by", T.ID, OPS, "the subject, or the privacy officer acting"),
        Column("purpose", T.TEXT, OPS, "why a privacy officer acted", max_length=500),
        Column("progress", T.JSON, OPS, "steps done with their counts (resumable)"),
        Column("receipt", T.JSON, OPS, "what was done in each store", nullable=True),
        Column("file", T.TEXT, OPS, "export archive name", nullable=True, max_length=80),
        created_column(),
        Column("updated_at", T.TIMESTAMP, OPS, "last change (Unix ms)"),
    ),
    indexes=(("user_id", "kind"), ("status",)),
)

STAFF_ACCESS_LOG = Table(
    name="staff_access_log",
    description="Every read of personal data by staff, append-only and hash-chained per "
    "jurisdiction (so a carve moves whole chains). Users see the entries about them.",
    kind=TableKind.USER_DATA,
    domicile_rule=DomicileRule.SUBJECT,
    subject="subject_id",
    erasure=ErasureAction.RETAIN,
    retention=Retention(None, "kept for accountability; holds ids and purposes only"),
    columns=(
        id_column(),
        domicile_column(DomicileRule.SUBJECT),
        Column("seq", T.BIGINT, OPS, "position in the jurisdiction's chain, from 1"),
        Column("staff_id", T.ID, OPS, "staff member who read"),
        Column("role", T.TEXT, OPS, "role the read was made in", max_length=32),
        Column("subject_id", T.ID, "user.unique_id", "whose data was read", references="users.id"),
        Column("action", T.TEXT, OPS, "what was read", max_length=200),
        Column("purpose", T.TEXT, OPS, "stated purpose", max_length=500),
        created_column(),
        Column("prev_hash", T.TEXT, OPS, "hash of the previous entry in the chain", max_length=64),
        Column("hash", T.TEXT, OPS, "sha256 over prev_hash and this entry", max_length=64),
    ),
    uniques=(("domicile", "seq"),),
    indexes=(("subject_id",),),
)

STAFF_ROLES = Table(
    name="staff_roles",
    description="Staff roles, scoped to this cell: a cell's grants are its own and never carved.",
    kind=TableKind.SYSTEM,
    domicile_rule=DomicileRule.CONTENT,
    retention=Retention(None, "kept until revoked"),
    columns=(
        id_column(),
        Column("user_id", T.ID, OPS, "staff member's account in this cell"),
        Column(
            "role",
            T.TEXT,
            OPS,
            "moderator | privacy_officer | operator | auditor",
            max_length=32,
        ),
        Column("granted_by", T.TEXT, OPS, "operator who granted it", max_length=100),
        created_column(),
    ),
    uniques=(("user_id", "role"),),
)
