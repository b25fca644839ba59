"""Backups: sealed, signed snapshots of a cell at its designated backup site, and restores."""

from carveout.backup.catalog import list_backups
from carveout.backup.keys import KeyMissing, load_keys, load_or_create_keys
from carveout.backup.models import (
    BackupError,
    BackupInfo,
    BackupResult,
    Manifest,
    TableCheck,
    Timings,
    Verification,
)
from carveout.backup.restore import restore_backup, verify_backup
from carveout.backup.run import DEFAULT_KEEP, run_backup
from carveout.backup.sites import Site, backup_site
from carveout.cells.registry import key_dir

__all__ = [
    "DEFAULT_KEEP",
    "BackupError",
    "BackupInfo",
    "BackupResult",
    "KeyMissing",
    "Manifest",
    "Site",
    "TableCheck",
    "Timings",
    "Verification",
    "backup_site",
    "key_dir",
    "list_backups",
    "load_keys",
    "load_or_create_keys",
    "restore_backup",
    "run_backup",
    "verify_backup",
]
