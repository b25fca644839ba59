"""Building blocks every table of the data map uses: column kinds and the common columns."""

from __future__ import annotations

from carveout.datamap.model import Column, ColumnType, DomicileRule, Retention

T = ColumnType
OPS = "system.operations"
KEEP_WHILE_ACCOUNT = Retention(None, "kept while the account exists; erased with it")


def id_column(description: str = "row id (UUIDv7)") -> Column:
    return Column("id", T.ID, OPS, description)


def domicile_column(rule: DomicileRule) -> Column:
    return Column(
        "domicile", T.TEXT, "user.location.country", f"jurisdiction: {rule.value}", max_length=2
    )


def created_column() -> Column:
    return Column("created_at", T.TIMESTAMP, OPS, "when the row was written (Unix ms)")
