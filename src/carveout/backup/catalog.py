"""The backups held at a site: listing, signed manifests, verification records, retention."""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import asdict
from pathlib import Path

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

TMP_PREFIX = ".tmp-"  # a backup being written; never listed, removed if its writer failed


def backup_ids(site: Site, cell: str) -> list[str]:
    """Complete backups of the cell at the site, oldest first (ids sort by time)."""
    folder = site.cell_folder(cell)
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / SIGNATURE).is_file()
    )


def backup_folder(site: Site, cell: str, backup_id: str) -> Path:
    if "/" in backup_id or backup_id.startswith(".") or not backup_id:
        raise NotFound(f"no backup {backup_id!r} of cell {cell!r} at site {site.name!r}")
    folder = site.cell_folder(cell) / backup_id
    if not (folder / SIGNATURE).is_file():
        known = ", ".join(backup_ids(site, cell)[-5:]) or "none"
        raise NotFound(
            f"no backup {backup_id!r} of cell {cell!r} at site {site.name!r} ({folder}); "
            f"latest there: {known}"
        )
    return folder


def sign(folder: Path, manifest: Manifest, keys: CellKeys) -> None:
    data = manifest.to_bytes()
    (folder / MANIFEST).write_bytes(data)
    # The signature is written last: its presence marks a backup as complete.
    (folder / SIGNATURE).write_text(keys.signing.sign(data).hex() + "\n")


def open_manifest(folder: Path, keys: CellKeys) -> Manifest:
    """The manifest, trusted only after its Ed25519 signature checks out with the cell's key."""
    try:
        data = (folder / MANIFEST).read_bytes()
        signature = bytes.fromhex((folder / SIGNATURE).read_text().strip())
    except FileNotFoundError as exc:
        raise BackupError(
            f"backup {folder.name}: {Path(str(exc.filename)).name} is missing"
        ) from None
    except ValueError:
        raise BackupError(f"backup {folder.name}: {SIGNATURE} is not a hex signature") from None
    try:
        keys.verifier().verify(signature, data)
    except InvalidSignature:
        raise BackupError(
            f"backup {folder.name}: {MANIFEST} does not match its signature (altered or damaged, "
            f"or signed by another key than cell {keys.cell!r}'s)"
        ) from None
    manifest = Manifest.from_bytes(data, f"backup {folder.name}")
    if manifest.backup_id != folder.name or manifest.cell != keys.cell:
        raise BackupError(
            f"backup {folder.name}: the manifest names backup {manifest.backup_id!r} of cell "
            f"{manifest.cell!r}; it was moved or copied from elsewhere"
        )
    if manifest.key_id != keys.key_id:
        raise BackupError(
            f"backup {folder.name} was encrypted with backup key {manifest.key_id}; cell "
            f"{keys.cell!r}'s key store holds key {keys.key_id}"
        )
    return manifest


def write_verification(folder: Path, result: Verification) -> None:
    tmp = folder / f".{VERIFICATION}.{secrets.token_hex(4)}"
    tmp.write_text(json.dumps(asdict(result), indent=1, sort_keys=True))
    tmp.replace(folder / VERIFICATION)


def read_verification(folder: Path) -> Verification | None:
    try:
        raw = json.loads((folder / VERIFICATION).read_text())
        raw["problems"] = tuple(raw["problems"])
        raw["tables"] = {k: TableCheck(**v) for k, v in raw["tables"].items()}
        return Verification(**raw)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def info(site: Site, cell: str, backup_id: str) -> BackupInfo:
    """For listing: read without keys, so the signature is not checked here (verify does)."""
    folder = site.cell_folder(cell) / backup_id
    manifest = Manifest.from_bytes((folder / MANIFEST).read_bytes(), f"backup {backup_id}")
    return BackupInfo(
        backup_id=backup_id,
        cell=cell,
        site=site.name,
        backend=manifest.backend,
        created_at_ms=manifest.created_at_ms,
        logical_bytes=manifest.logical_bytes,
        stored_bytes=manifest.stored_bytes,
        rows=sum(t.rows for t in manifest.tables.values()),
        verification=read_verification(folder),
    )


def prune(site: Site, cell: str, keep: int) -> tuple[str, ...]:
    """Keep the newest `keep` generations; drop older ones and writers' leftovers."""
    folder = site.cell_folder(cell)
    ids = backup_ids(site, cell)
    doomed = ids[: max(0, len(ids) - keep)]
    for backup_id in doomed:
        # Unsign first: a removal cut short leaves an incomplete backup, never a listed one.
        (folder / backup_id / SIGNATURE).unlink(missing_ok=True)
        shutil.rmtree(folder / backup_id)
    return tuple(doomed)


def list_backups(data_dir: Path, policy: Policy, cell: str | None = None) -> list[BackupInfo]:
    """Every backup at each cell's designated site (cells with no backup site hold none)."""
    out: list[BackupInfo] = []
    for spec in policy.cells:
        if (cell is not None and spec.name != cell) or spec.backup_site is None:
            continue
        site = backup_site(data_dir, policy, spec.name)
        out += [info(site, spec.name, backup_id) for backup_id in backup_ids(site, spec.name)]
    if cell is not None:
        policy.cell(cell)  # an unknown cell is an error, not an empty list
    return out
