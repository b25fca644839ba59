"""Where a cell's data lives (its SQLite file or PostgreSQL database, and its blob folder)."""

from __future__ import annotations

from pathlib import Path

from carveout.backup.pgtools import database_exists
from carveout.cells import CellSpec
from carveout.cells.registry import cell_root


def is_sqlite(spec: CellSpec) -> bool:
    return spec.storage == "sqlite"


def sqlite_file(data_dir: Path, spec: CellSpec) -> Path:
    return cell_root(data_dir, spec.name) / "cell.db"


def cell_exists(data_dir: Path, spec: CellSpec) -> bool:
    """Whether the cell has a database: a restore must not silently overwrite one."""
    if is_sqlite(spec):
        return sqlite_file(data_dir, spec).exists()
    return database_exists(spec.storage)
