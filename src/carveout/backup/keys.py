"""A cell's key store: its backup key and manifest-signing key, kept apart from its data."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from carveout.cells.registry import key_dir
from carveout.core import NotFound
from carveout.storage.keystore import write_secret

BACKUP_KEY = "backup.key"  # 32 random bytes: AES-256-GCM, one derived key per backup
SIGNING_KEY = "backup-signing.key"  # Ed25519 private key (raw 32 bytes)


class KeyMissing(NotFound):
    """The cell's key store lacks a key a backup needs."""


@dataclass(frozen=True)
class CellKeys:
    cell: str
    backup_key: bytes
    signing: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        # A name for the key that reveals nothing about it: restore finds the right key by it.
        return hashlib.sha256(b"carveout backup key id\0" + self.backup_key).hexdigest()[:16]

    @property
    def public_hex(self) -> str:
        return self.signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def verifier(self) -> Ed25519PublicKey:
        return self.signing.public_key()


def _read(path: Path, cell: str, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyMissing(
            f"{what} of cell {cell!r} not found at {path}: without it the cell's backups "
            "cannot be read; restore the cell's key store (it is kept out of data backups)"
        ) from None
    if len(data) != 32:
        raise KeyMissing(
            f"{what} of cell {cell!r} at {path} is damaged ({len(data)} bytes, not 32)"
        )
    return data


def load_keys(data_dir: Path, cell: str) -> CellKeys:
    """The cell's keys; KeyMissing (naming the file) if the key store lacks one."""
    folder = key_dir(data_dir, cell)
    backup_key = _read(folder / BACKUP_KEY, cell, "backup key")
    signing = _read(folder / SIGNING_KEY, cell, "backup signing key")
    return CellKeys(cell, backup_key, Ed25519PrivateKey.from_private_bytes(signing))


def load_or_create_keys(data_dir: Path, cell: str) -> CellKeys:
    """The cell's keys, created (0600, in a 0700 folder) on the cell's first backup."""
    folder = key_dir(data_dir, cell)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (folder / BACKUP_KEY).exists():
        write_secret(folder / BACKUP_KEY, secrets.token_bytes(32))
    if not (folder / SIGNING_KEY).exists():
        write_secret(folder / SIGNING_KEY, secrets.token_bytes(32))
    return load_keys(data_dir, cell)
