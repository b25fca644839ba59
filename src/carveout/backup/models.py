"""What a backup is: its manifest (items, chunks, per-table checks) and the results of each step."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from carveout.core import CarveoutError

FORMAT = "carveout-backup/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
VERIFICATION = "verify.json"
CHUNKS = "chunks"
DATABASE_ITEM = "database"
BLOB_PREFIX = "blobs/"
# How a manifest's per-table digests were computed (backup/digest.py); verify uses the same.
ROW_REPR = "row-repr-sha256"  # storage.fingerprint's digest; manifests naming none used it
SQLITE_JSON = "sqlite-json-sha256-v1"
PG_COPY = "pg-copy-sha256-v1"  # PostgreSQL's COPY text of the rows (backup/digest_pg.py)


class BackupError(CarveoutError):
    """A backup cannot be written, read or trusted; the message names what and where."""

    status = 500


@dataclass(frozen=True)
class Item:
    """One file in the backup's logical stream: the database snapshot or one blob."""

    name: str  # "database" or "blobs/<sha256>"
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Chunk:
    """One stored chunk: zstd-compressed, then AES-GCM-encrypted; sha256 of the stored bytes."""

    index: int
    file: str
    stored_size: int
    plain_size: int
    sha256: str


@dataclass(frozen=True)
class TableCheck:
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    cell: str
    site: str
    backend: str  # sqlite | postgresql
    snapshot: str  # how the database was captured, e.g. "sqlite3 online backup API"
    schema_version: str | None
    created_at_ms: int
    key_id: str  # names the cell key that encrypted the chunks, never the key itself
    signing_key: str  # hex of the Ed25519 public key that signed this manifest
    compression: str
    encryption: str
    chunk_size: int
    items: tuple[Item, ...]
    chunks: tuple[Chunk, ...]
    tables: dict[str, TableCheck]
    format: str = FORMAT
    table_digest: str = ROW_REPR  # absent from manifests written before it had a choice

    @property
    def logical_bytes(self) -> int:
        return sum(i.size for i in self.items)

    @property
    def stored_bytes(self) -> int:
        return sum(c.stored_size for c in self.chunks)

    @property
    def blobs(self) -> tuple[str, ...]:
        return tuple(
            sorted(i.name[len(BLOB_PREFIX) :] for i in self.items if i.name != DATABASE_ITEM)
        )

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> Manifest:
        try:
            raw: dict[str, Any] = json.loads(data)
            if raw.get("format") != FORMAT:
                raise BackupError(f"{source}: not a {FORMAT} manifest")
            raw["items"] = tuple(Item(**i) for i in raw["items"])
            raw["chunks"] = tuple(Chunk(**c) for c in raw["chunks"])
            raw["tables"] = {k: TableCheck(**v) for k, v in raw["tables"].items()}
            return cls(**raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise BackupError(f"{source}: malformed manifest ({exc})") from exc


@dataclass(frozen=True)
class Timings:
    """Where a backup's seconds went; encryption and checksums are the overhead measured.

    The per-table checks run while the snapshot is written out (`write_out_s`: reading it and
    the blobs, compress, encrypt, checksum, write), so the parts overlap: total is about
    snapshot + the longer of the two, not the sum. Compress, encrypt and checksum are summed
    over the threads that seal chunks side by side: together they can exceed `write_out_s`."""

    snapshot_s: float = 0.0
    table_checks_s: float = 0.0
    write_out_s: float = 0.0
    compress_s: float = 0.0
    encrypt_s: float = 0.0
    checksum_s: float = 0.0
    write_s: float = 0.0
    upload_s: float = 0.0  # S3 sites: uploading the staged backup once it is whole
    total_s: float = 0.0


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    path: str
    removed: tuple[str, ...]  # generations dropped by retention
    timings: Timings


@dataclass(frozen=True)
class Verification:
    backup_id: str
    ok: bool
    checked_at_ms: int
    problems: tuple[str, ...] = ()
    tables: dict[str, TableCheck] = field(default_factory=dict)


@dataclass(frozen=True)
class BackupInfo:
    """One row of `backup list`: read from the site without keys (signature not checked)."""

    backup_id: str
    cell: str
    site: str
    backend: str
    created_at_ms: int
    logical_bytes: int
    stored_bytes: int
    rows: int
    verification: Verification | None
