"""The content exchange's tables: the guest copies a cell holds and its append-only exchange log."""

from __future__ import annotations

from carveout.datamap.columns import OPS, T, created_column
from carveout.datamap.model import Column, DomicileRule, Retention, Table, TableKind

# Both tables are the cell's own bookkeeping (never carved, never exported as anyone's data):
# the guest copy itself lives in `videos`/`blobs` with its origin's domicile; the foreign
# creator's rights are answered by the origin cell and reach here at the next sync.
GUEST_VIDEOS = Table(
    name="guest_videos",
    description="Guest content: one row per video this cell shows as a read-only copy from "
    "another cell (the copy's id is the origin's video id). Removed when the origin withdraws it.",
    kind=TableKind.SYSTEM,
    domicile_rule=DomicileRule.CONTENT,
    primary_key="video_id",
    retention=Retention(None, "kept while the origin publishes the video"),
    columns=(
        Column("video_id", T.ID, OPS, "the guest copy (and origin) video id"),
        Column("origin_cell", T.TEXT, OPS, "cell the video was copied from", max_length=64),
        Column(
            "origin_domicile",
            T.TEXT,
            "user.location.country",
            "the origin video's domicile (the foreign creator's jurisdiction)",
            max_length=2,
        ),
        Column(
            "creator_id",
            T.ID,
            OPS,
            "the creator's pseudonym (as the copy's videos.creator_id), keyed by the origin's "
            "secret: it resolves to nobody here; it names the key sealing the handle",
        ),
        Column(
            "creator_handle",
            T.TEXT,
            "user.account.username",
            "the foreign creator's public handle, the only personal field an exchange carries; "
            "sealed under a key this cell destroys when the creator's last copy is withdrawn",
            max_length=30,
            sealed=True,
        ),
        Column("sha256", T.TEXT, OPS, "the media file copied", max_length=64),
        Column("size_bytes", T.BIGINT, OPS, "bytes of media copied"),
        Column(
            "visibility",
            T.TEXT,
            OPS,
            "this cell's own moderation outcome: published | restricted | held | rejected",
            max_length=16,
        ),
        Column("reasons", T.JSON, OPS, "this cell's rule, ground and signals, as JSON"),
        created_column(),
        Column("synced_at", T.TIMESTAMP, OPS, "last sync that found the origin still publishing"),
    ),
    indexes=(("origin_cell",), ("sha256",), ("creator_id",)),
)

EXCHANGE_LOG = Table(
    name="exchange_log",
    description="Every exchange, append-only: what was sent or received, from and to which "
    "cell, when, bytes, and the receiving cell's moderation outcome or why it was withdrawn.",
    kind=TableKind.SYSTEM,
    domicile_rule=DomicileRule.CONTENT,
    primary_key="seq",
    retention=Retention(None, "kept as the record of every cross-cell flow"),
    columns=(
        Column("seq", T.BIGINT, OPS, "position in the log, strictly increasing"),
        Column("run_id", T.ID, OPS, "the sync run that wrote it"),
        Column("direction", T.TEXT, OPS, "sent | received", max_length=8),
        Column("origin_cell", T.TEXT, OPS, "sending cell", max_length=64),
        Column("receiving_cell", T.TEXT, OPS, "receiving cell", max_length=64),
        Column("video_id", T.ID, OPS, "the video exchanged"),
        Column(
            "action",
            T.TEXT,
            OPS,
            "copied | withdrawn | remoderated | failed",
            max_length=16,
        ),
        Column("bytes", T.BIGINT, OPS, "media bytes transferred (0 when none)"),
        Column(
            "outcome",
            T.TEXT,
            OPS,
            "receiving cell's visibility, or the withdrawal/failure reason",
            max_length=200,
        ),
        created_column(),
    ),
    indexes=(("receiving_cell", "seq"),),
)
