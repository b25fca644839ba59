"""The data map's system tables of a carve in progress: the source's change capture and the
target's saved progress."""

from __future__ import annotations

from carveout.datamap.columns import OPS, T
from carveout.datamap.model import Column, DomicileRule, Retention, Table, TableKind

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
