"""Byte-level scan: does any file of a cell still hold a given string, in any common encoding?

After an erasure the subject's email, handle and display name must appear nowhere in the
cell's files — database, WAL and journals, blobs, exports, key store, logs. Strings are looked
for as UTF-8, UTF-16 (LE/BE) and case-folded, so an index or a different encoding cannot hide
a copy."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from carveout.cells import Cell
from carveout.cells.registry import key_dir
from carveout.privacy.exports import export_dir


@dataclass(frozen=True)
class Hit:
    path: Path
    needle: str
    offset: int


def cell_paths(cell: Cell, data_dir: Path) -> list[Path]:
    """Every folder holding something of the cell (its logs live under its root)."""
    return [cell.root, export_dir(cell), key_dir(data_dir, cell.name)]


def _forms(needle: str) -> set[bytes]:
    out = set()
    for text in {needle, needle.lower(), needle.upper()}:
        out |= {text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-16-be")}
    return out


def scan(paths: Iterable[Path], needles: Iterable[str]) -> list[Hit]:
    wanted = {n: _forms(n) for n in needles if n}
    hits: list[Hit] = []
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            for data in _contents(path):
                for needle, forms in wanted.items():
                    for form in forms:
                        at = data.find(form)
                        if at >= 0:
                            hits.append(Hit(path, needle, at))
                            break
    return hits


def _contents(path: Path) -> list[bytes]:
    """The file's bytes, and for a zip (an export) each member's uncompressed bytes too:
    compression must not hide a copy."""
    data = path.read_bytes()
    out = [data]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            out += [zf.read(name) for name in zf.namelist()]
    return out
