"""The data map's moderation tables: hash banks, their hashes, decisions and reviews."""

from __future__ import annotations

from carveout.datamap.columns import (
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
        id_column(),
        _BANK_DOMICILE,
        Column("name", T.TEXT, OPS, "bank name, unique in the cell", unique=True, max_length=64),
        Column("description", T.TEXT, OPS, "what the bank holds", max_length=500),
        Column("action", T.TEXT, OPS, "reject | hold | restrict on a match", max_length=16),
        Column("ground", T.TEXT, OPS, "illegal | terms (DSA decision ground)", max_length=16),
        Column("category", T.TEXT, OPS, "DSA statement category", max_length=80),
        Column("enabled", T.BOOL, OPS, "whether uploads are matched against it"),
        created_column(),
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
        id_column(),
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
        created_column(),
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
    # Statements of reasons must stay on record (DSA Art. 17, 24(5)): erasure unlinks them from
    # the subject and strips the facts instead of deleting them.
    erasure=ErasureAction.ANONYMISE,
    retention=Retention(None, "kept, anonymised once the subject is erased (DSA Art. 17)"),
    columns=(
        id_column(),
        domicile_column(DomicileRule.CONTENT),
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
        created_column(),
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
    erasure=ErasureAction.ANONYMISE,
    retention=Retention(None, "kept with its decision; anonymised once a party is erased"),
    columns=(
        id_column(),
        domicile_column(DomicileRule.CONTENT),
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
        created_column(),
        Column("closed_at", T.TIMESTAMP, OPS, "when a reviewer closed it", nullable=True),
    ),
    indexes=(("status", "created_at"), ("target_id",)),
)
