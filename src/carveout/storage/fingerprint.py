"""Order-independent content digests of a cell: proves a store is exactly as it was."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from carveout.datamap import DATA_MAP
from carveout.storage.blobs import BlobStore
from carveout.storage.port import Store


def row_digest(row: dict[str, Any]) -> str:
    # Canonical JSON: the same row read from SQLite or PostgreSQL hashes the same.
    return hashlib.sha256(
        json.dumps(row, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    tables: dict[str, tuple[int, str]]  # table -> (row count, digest of all rows)
    blobs: tuple[str, ...]

    def diff(self, other: Fingerprint) -> list[str]:
        out = [
            f"{name}: {self.tables.get(name)} != {other.tables.get(name)}"
            for name in sorted(set(self.tables) | set(other.tables))
            if self.tables.get(name) != other.tables.get(name)
        ]
        if self.blobs != other.blobs:
            out.append(f"blobs: {len(self.blobs)} files != {len(other.blobs)} files")
        return out


def fingerprint(store: Store, blobs: BlobStore | None = None) -> Fingerprint:
    tables: dict[str, tuple[int, str]] = {}
    for table in DATA_MAP.tables:
        digest = hashlib.sha256()
        count = 0
        for chunk in store.iter_rows(table.name, order_by=table.primary_key):
            for row in chunk:
                digest.update(row_digest(row).encode())
                count += 1
        tables[table.name] = (count, digest.hexdigest())
    files = tuple(blobs.list()) if blobs is not None else ()
    return Fingerprint(tables=tables, blobs=files)
