"""Storage: the Store port, its SQLite and PostgreSQL implementations, and blob stores."""

from pathlib import Path

from carveout.storage.blobs import BlobStore, LocalBlobStore, sha256_file
from carveout.storage.engine import TOOLING_TABLES, SqlStore, schema_head
from carveout.storage.fingerprint import (
    Fingerprint,
    connection_digest,
    fingerprint,
    row_digest,
    table_digest,
)
from carveout.storage.keystore import KeyRecord, Tombstone, UserKeyStore
from carveout.storage.pgcluster import PgCluster, PgClusterError
from carveout.storage.port import Row, Store
from carveout.storage.postgres import (
    PostgresStore,
    create_migrated_database,
    drop_database,
    ensure_database,
)
from carveout.storage.rehearsal import Rehearsal
from carveout.storage.sealing import Unreadable, Vault
from carveout.storage.sizes import relation_sizes, row_counts
from carveout.storage.sqlite import SqliteStore

__all__ = [
    "TOOLING_TABLES",
    "BlobStore",
    "Fingerprint",
    "KeyRecord",
    "LocalBlobStore",
    "PgCluster",
    "PgClusterError",
    "PostgresStore",
    "Rehearsal",
    "Row",
    "SqlStore",
    "SqliteStore",
    "Store",
    "Tombstone",
    "Unreadable",
    "UserKeyStore",
    "Vault",
    "connection_digest",
    "create_migrated_database",
    "drop_database",
    "ensure_database",
    "fingerprint",
    "open_store",
    "relation_sizes",
    "row_counts",
    "row_digest",
    "schema_head",
    "sha256_file",
    "table_digest",
]


def open_store(url_or_path: str) -> Store:
    """`postgresql://...` opens a PostgreSQL store; anything else is a SQLite file path."""
    if url_or_path.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        return PostgresStore(url_or_path.replace("postgres://", "postgresql://", 1))
    return SqliteStore(Path(url_or_path))
