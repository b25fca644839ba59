"""The backups held at a site: listing, signed manifests, verification records, retention."""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature

from carveout.backup.keys import CellKeys
from carveout.backup.models import (
    MANIFEST,
    SIGNATURE,
    VERIFICATION,
    BackupError,
    BackupInfo,
    Manifest,
    TableCheck,
    Verification,
)
from carveout.backup.sites import Site, backup_site
from carveout.cells import Policy
from carveout.core import NotFound

if TYPE_CHECKING:
    from carveout.backup.s3 import S3Site

TMP_PREFIX = ".tmp-"  # a backup being written; never listed, removed if its writer failed


def connect(site: Site) -> S3Site:
    from carveout.backup.s3 import S3Site  # boto3 loads only for S3 sites

    return S3Site(site)


@dataclass(frozen=True)
class Stored:
    """One backup at its site, read and written by object name (`manifest.json`,
    `chunks/000000.chunk`) the same way whether the site is a folder or a bucket."""

    site: Site
    cell: str
    backup_id: str
    bucket: S3Site | None = None

    @property
    def folder(self) -> Path:
        return self.site.cell_folder(self.cell) / self.backup_id

    @property
    def location(self) -> str:
        if self.bucket is None:
            return str(self.folder)
        return f"{self.site.location}: {self.bucket.key(self.cell, self.backup_id, '')}"

    def read(self, name: str) -> bytes:
        """The object's bytes; FileNotFoundError if it is not there."""
        if self.bucket is not None:
            return self.bucket.read(self.cell, self.backup_id, name)
        return (self.folder / name).read_bytes()

    def write(self, name: str, data: bytes) -> None:
        """Replace one small object (the verification record) whole."""
        if self.bucket is not None:
            self.bucket.write(self.cell, self.backup_id, name, data)
            return
        tmp = self.folder / f".{name}.{secrets.token_hex(4)}"
        tmp.write_bytes(data)
        tmp.replace(self.folder / name)


def backup_ids(site: Site, cell: str) -> list[str]:
    """Complete backups of the cell at the site, oldest first (ids sort by time)."""
    if site.s3 is not None:
        return connect(site).backup_ids(cell)
    folder = site.cell_folder(cell)
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / SIGNATURE).is_file()
    )


def stored_backup(site: Site, cell: str, backup_id: str) -> Stored:
    """A complete (signed) backup at the site, or NotFound naming the latest ones there."""
    if "/" in backup_id or backup_id.startswith(".") or not backup_id:
        raise NotFound(f"no backup {backup_id!r} of cell {cell!r} at site {site.name!r}")
    bucket = connect(site) if site.s3 is not None else None
    stored = Stored(site, cell, backup_id, bucket)
    if bucket is not None:
        ids = bucket.backup_ids(cell)
        complete = backup_id in ids
    else:
        complete = (stored.folder / SIGNATURE).is_file()
        ids = [] if complete else backup_ids(site, cell)
    if not complete:
        known = ", ".join(ids[-5:]) or "none"
        raise NotFound(
            f"no backup {backup_id!r} of cell {cell!r} at site {site.name!r} "
            f"({stored.location}); latest there: {known}"
        )
    return stored


def backup_folder(site: Site, cell: str, backup_id: str) -> Path:
    return stored_backup(site, cell, backup_id).folder


def sign(folder: Path, manifest: Manifest, keys: CellKeys) -> None:
    data = manifest.to_bytes()
    (folder / MANIFEST).write_bytes(data)
    # The signature is written last: its presence marks a backup as complete.
    (folder / SIGNATURE).write_text(keys.signing.sign(data).hex() + "\n")


def open_manifest(stored: Stored, keys: CellKeys) -> Manifest:
    """The manifest, trusted only after its Ed25519 signature checks out with the cell's key."""
    name = stored.backup_id
    try:
        data = stored.read(MANIFEST)
        signature = bytes.fromhex(stored.read(SIGNATURE).decode().strip())
    except FileNotFoundError as exc:
        raise BackupError(f"backup {name}: {Path(str(exc.filename)).name} is missing") from None
    except ValueError:
        raise BackupError(f"backup {name}: {SIGNATURE} is not a hex signature") from None
    try:
        keys.verifier().verify(signature, data)
    except InvalidSignature:
        raise BackupError(
            f"backup {name}: {MANIFEST} does not match its signature (altered or damaged, "
            f"or signed by another key than cell {keys.cell!r}'s)"
        ) from None
    manifest = Manifest.from_bytes(data, f"backup {name}")
    if manifest.backup_id != name or manifest.cell != keys.cell:
        raise BackupError(
            f"backup {name}: the manifest names backup {manifest.backup_id!r} of cell "
            f"{manifest.cell!r}; it was moved or copied from elsewhere"
        )
    if manifest.key_id != keys.key_id:
        raise BackupError(
            f"backup {name} was encrypted with backup key {manifest.key_id}; cell "
            f"{keys.cell!r}'s key store holds key {keys.key_id}"
        )
    return manifest


def write_verification(stored: Stored, result: Verification) -> None:
    stored.write(VERIFICATION, json.dumps(asdict(result), indent=1, sort_keys=True).encode())


def read_verification(stored: Stored) -> Verification | None:
    try:
        raw = json.loads(stored.read(VERIFICATION))
        raw["problems"] = tuple(raw["problems"])
        raw["tables"] = {k: TableCheck(**v) for k, v in raw["tables"].items()}
        return Verification(**raw)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def info(stored: Stored) -> BackupInfo:
    """For listing: read without keys, so the signature is not checked here (verify does)."""
    backup_id = stored.backup_id
    manifest = Manifest.from_bytes(stored.read(MANIFEST), f"backup {backup_id}")
    return BackupInfo(
        backup_id=backup_id,
        cell=stored.cell,
        site=stored.site.name,
        backend=manifest.backend,
        created_at_ms=manifest.created_at_ms,
        logical_bytes=manifest.logical_bytes,
        stored_bytes=manifest.stored_bytes,
        rows=sum(t.rows for t in manifest.tables.values()),
        verification=read_verification(stored),
    )


def prune(site: Site, cell: str, keep: int) -> tuple[str, ...]:
    """Keep the newest `keep` generations; drop older ones and writers' leftovers."""
    folder = site.cell_folder(cell)
    bucket = connect(site) if site.s3 is not None else None
    ids = backup_ids(site, cell)
    doomed = ids[: max(0, len(ids) - keep)]
    for backup_id in doomed:
        if bucket is not None:
            bucket.delete(cell, backup_id)  # the signature first, as below
            continue
        # Unsign first: a removal cut short leaves an incomplete backup, never a listed one.
        (folder / backup_id / SIGNATURE).unlink(missing_ok=True)
        shutil.rmtree(folder / backup_id)
    if bucket is not None:
        bucket.remove_leftovers(cell)
    return tuple(doomed)


def list_backups(data_dir: Path, policy: Policy, cell: str | None = None) -> list[BackupInfo]:
    """Every backup at each cell's designated site (cells with no backup site hold none)."""
    out: list[BackupInfo] = []
    for spec in policy.cells:
        if (cell is not None and spec.name != cell) or spec.backup_site is None:
            continue
        site = backup_site(data_dir, policy, spec.name)
        bucket = connect(site) if site.s3 is not None else None
        out += [
            info(Stored(site, spec.name, backup_id, bucket))
            for backup_id in backup_ids(site, spec.name)
        ]
    if cell is not None:
        policy.cell(cell)  # an unknown cell is an error, not an empty list
    return out
