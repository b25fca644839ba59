"""The data map: one declarative description of every table and column carveout stores."""

from carveout.datamap.catalog import DATA_MAP
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
from carveout.datamap.schema import METADATA, TABLES, build_metadata

__all__ = [
    "DATA_MAP",
    "METADATA",
    "TABLES",
    "Column",
    "ColumnType",
    "DataMap",
    "DomicileRule",
    "ErasureAction",
    "Retention",
    "Table",
    "TableKind",
    "build_metadata",
]
