"""SQLAlchemy table objects generated from the data map: the one place queries get their tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from carveout.datamap.catalog import DATA_MAP
from carveout.datamap.model import Column, ColumnType, DataMap, Table


def sa_type(column: Column) -> sa.types.TypeEngine[Any]:
    kind = column.type
    if column.sealed:
        return sa.Text()  # ciphertext: longer than the value, and text whatever the value's type
    if kind in (ColumnType.ID,):
        return sa.String(36)
    if kind is ColumnType.TEXT:
        return sa.String(column.max_length) if column.max_length else sa.Text()
    if kind is ColumnType.JSON:
        return sa.Text()
    if kind is ColumnType.INT:
        return sa.Integer()
    if kind in (ColumnType.BIGINT, ColumnType.TIMESTAMP):
        return sa.BigInteger()
    if kind is ColumnType.FLOAT:
        return sa.Double()
    if kind is ColumnType.BOOL:
        return sa.Boolean()
    raise ValueError(f"no SQL type for {kind}")


def sa_table(table: Table, metadata: sa.MetaData) -> sa.Table:
    cols: list[sa.schema.SchemaItem] = [
        sa.Column(
            c.name,
            sa_type(c),
            primary_key=c.name == table.primary_key,
            nullable=c.nullable,
            unique=c.unique or None,
        )
        for c in table.columns
    ]
    cols += [sa.UniqueConstraint(*u, name=f"uq_{table.name}_{'_'.join(u)}") for u in table.uniques]
    cols += [sa.Index(f"ix_{table.name}_{'_'.join(i)}", *i) for i in table.indexes]
    return sa.Table(table.name, metadata, *cols)


def build_metadata(data_map: DataMap) -> sa.MetaData:
    metadata = sa.MetaData()
    for table in data_map.all_tables:
        sa_table(table, metadata)
    return metadata


METADATA = build_metadata(DATA_MAP)
TABLES: dict[str, sa.Table] = dict(METADATA.tables)
