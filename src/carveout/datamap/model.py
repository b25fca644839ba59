"""The data map vocabulary: tables, columns, domicile rules, subjects, categories, retention."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ColumnType(StrEnum):
    ID = "id"  # UUIDv7 text
    TEXT = "text"
    INT = "int"
    BIGINT = "bigint"
    FLOAT = "float"
    BOOL = "bool"
    JSON = "json"  # JSON-encoded text: portable and checksums agree across backends
    TIMESTAMP = "timestamp"  # Unix milliseconds (bigint)


class DomicileRule(StrEnum):
    """How a row's `domicile` is decided when it is written."""

    OWN_COUNTRY = "the user's country"
    ACTOR = "the acting user's domicile"
    CREATOR = "the creator's domicile"
    CONTENT = "the domicile of the video it describes"
    SUBJECT = "the domicile of the user it is about"


class TableKind(StrEnum):
    USER_DATA = "user_data"  # about or by a user: exported, erased, carved
    CONTENT = "content"  # public user-generated content: carved, exchangeable as guest content
    DERIVED = (
        "derived"  # recomputable aggregates: recomputed after a carve, never trusted across cells
    )
    SYSTEM = "system"  # the cell's own operations (carve bookkeeping): never copied or exported


class ErasureAction(StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"  # keep the row for others' integrity, strip what identifies the subject
    RETAIN = "retain"  # kept because the law requires it (proof of erasure, access accountability)


@dataclass(frozen=True)
class Retention:
    days: int | None  # None: kept while the account exists
    basis: str
    column: str = "created_at"  # the timestamp `days` counts from (the retention job uses it)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    category: str  # Fides-style dotted data category, e.g. user.contact.email
    description: str
    nullable: bool = False
    unique: bool = False
    references: str | None = None  # "table.column"; may point into another cell after a carve
    blob_ref: bool = False  # value is a sha256 naming a file in the cell's blob store
    max_length: int | None = None
    # Stored encrypted with the subject's data key (crypto-shredding): erasing the key makes
    # every copy unreadable, backups included. The stored value is text whatever `type` says.
    sealed: bool = False

    @property
    def personal(self) -> bool:
        return self.category.startswith("user.")


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    kind: TableKind
    domicile_rule: DomicileRule
    columns: tuple[Column, ...]
    retention: Retention
    primary_key: str = "id"
    subject: str | None = None  # column holding the user id this row is about
    other_subjects: tuple[str, ...] = ()  # further columns naming users the row is also about
    erasure: ErasureAction = ErasureAction.DELETE
    indexes: tuple[tuple[str, ...], ...] = ()
    uniques: tuple[tuple[str, ...], ...] = ()
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        object.__setattr__(self, "column_names", names)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name}.{name} is not in the data map")

    @property
    def blob_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.blob_ref)

    @property
    def sealed_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.sealed)

    @property
    def subject_columns(self) -> tuple[str, ...]:
        """Every column naming a user the row is about, the main subject first."""
        return ((self.subject,) if self.subject else ()) + self.other_subjects


@dataclass(frozen=True)
class DataMap:
    tables: tuple[Table, ...]  # data: every row has a domicile; carved, exported, erased
    system: tuple[Table, ...] = ()  # operational bookkeeping, described like the rest

    @property
    def all_tables(self) -> tuple[Table, ...]:
        return self.tables + self.system

    def table(self, name: str) -> Table:
        for table in self.all_tables:
            if table.name == name:
                return table
        raise KeyError(f"table {name!r} is not in the data map")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def tables_about_subjects(self) -> tuple[Table, ...]:
        return tuple(t for t in self.tables if t.subject is not None or t.other_subjects)
