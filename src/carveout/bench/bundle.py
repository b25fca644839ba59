"""The transfer bundle's export and import MB/s next to `tar | zstd -3` of the same rows and
blob files, and its extraction (a step of `carveout bench backup`).

The bundle carries J's rows and blob files. The baseline archives the same content as plain
files, staged beforehand and not timed: each table's rows of J as the bundle serialises them
(`encode_rows`: the column names once, the rows as arrays) and J's blob files. So the baseline
is only the cost of moving those bytes; the bundle's export also reads the rows from the cell,
seals every chunk to the recipient's key and checksums it, and its import checks every chunk
before loading anything, loads the rows and blobs into a new cell, and runs the carve's verify
and leak scan. The second baseline (bench/backup_native.py) does read and load a database: the
database's own tools moving the same rows, with no sealing or checking."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout.bench import backup_native
from carveout.bench.archive import tar_zstd, untar_zstd
from carveout.bench.clock import Best
from carveout.carve.bundle import encode_rows, export_bundle, import_bundle
from carveout.carve.bundle_crypto import generate_keypair
from carveout.carve.capture import carved_tables
from carveout.cells import Cell, Deployment, init_data_dir
from carveout.core import parse_jurisdictions
from carveout.datamap import TABLES

JURISDICTIONS = "US,CA,AU,NZ"  # what the carve bench moves too
TARGET = "na-anz"

# A storage for the recipient's new cell per round ("sqlite", or a fresh PostgreSQL database
# that is dropped when the context ends).
RecipientStorage = Callable[[int], AbstractContextManager[str]]


@dataclass
class BundleRun:
    jurisdictions: str = JURISDICTIONS
    rows: int = 0
    blobs: int = 0
    data_bytes: int = 0  # J's rows as JSON lines plus J's blob files: what both sides carry
    stored_bytes: int = 0  # the bundle's sealed chunks
    baseline_stored_bytes: int = 0  # the .tar.zst
    export: Best = field(default_factory=Best)
    import_: Best = field(default_factory=Best)
    baseline_pack: Best = field(default_factory=Best)
    baseline_unpack: Best = field(default_factory=Best)
    # The second baseline: the database's own tools on the same subset (bench/backup_native.py).
    native_export_tools: str = ""
    native_import_tools: str = ""
    native_stored_bytes: int = 0
    native_export: Best = field(default_factory=Best)
    native_import: Best = field(default_factory=Best)


def measure_bundle(
    deployment: Deployment,
    cell: str,
    work: Path,
    rounds: int,
    storage: RecipientStorage,
    pg_admin_url: str | None = None,
) -> BundleRun:
    """Best of `rounds` for each of the six steps, all on the same data. `pg_admin_url`: the
    PostgreSQL server's URL, where the native baseline creates its new databases."""
    run = BundleRun()
    source = deployment.cell(cell)
    staged = work / "staged"
    codes = parse_jurisdictions(JURISDICTIONS)
    _stage(source, codes, staged, run)
    native = backup_native.prepare(source, codes, staged / "blobs", work / "native-baseline")
    run.native_export_tools, run.native_import_tools = native.export_tools, native.import_tools
    loaded = work / "native-loaded"
    archive = work / "bundle.tar.zst"
    unpacked = work / "unpacked"
    key, public = generate_keypair(work / "recipient-keys")
    # Round by round, each side's steps next to the other's: a machine whose speed drifts
    # during the run (a shared host, the page cache filling) weighs on both alike.
    for i in range(rounds):
        shutil.rmtree(native.folder / "rows", ignore_errors=True)
        (native.folder / "rows").mkdir()
        run.native_export.time(lambda: backup_native.export(native))
        shutil.rmtree(loaded, ignore_errors=True)
        loaded.mkdir()
        run.native_import.time(
            functools.partial(backup_native.load, native, loaded, pg_admin_url, i)
        )
        run.baseline_pack.time(lambda: tar_zstd(staged, archive))
        shutil.rmtree(unpacked, ignore_errors=True)
        unpacked.mkdir()
        run.baseline_unpack.time(lambda: untar_zstd(archive, unpacked))
        _round(deployment, work / f"round-{i}", i, public, key, storage, run)
    run.native_stored_bytes = native.archive.stat().st_size
    run.baseline_stored_bytes = archive.stat().st_size
    shutil.rmtree(loaded, ignore_errors=True)
    return run


def _round(
    deployment: Deployment,
    work: Path,
    i: int,
    public: Path,
    key: Path,
    storage: RecipientStorage,
    run: BundleRun,
) -> None:
    """One export into a new bundle folder and its import into a new recipient deployment."""
    bundle = work / "bundle"
    run.export.time(lambda: export_bundle(deployment, JURISDICTIONS, bundle, public))
    run.stored_bytes = sum(f.stat().st_size for f in (bundle / "chunks").iterdir())
    with storage(i) as url:
        recipient = init_data_dir(work / "recipient")
        try:
            run.import_.time(lambda: import_bundle(recipient, bundle, key, TARGET, storage=url))
        finally:
            recipient.close()
    shutil.rmtree(work, ignore_errors=True)


def _stage(source: Cell, codes: tuple[str, ...], folder: Path, run: BundleRun) -> None:
    """J's rows and blob files as plain files: the baseline's input (not timed)."""
    (folder / "rows").mkdir(parents=True)
    (folder / "blobs").mkdir()
    shas: set[str] = set()
    with source.store.connect() as conn:
        for table in carved_tables():
            names, rows = _rows(conn, table.name, table.primary_key, codes)
            body = encode_rows(names, rows)
            (folder / "rows" / f"{table.name}.json").write_bytes(body)
            run.rows += len(rows)
            run.data_bytes += len(body)
            for col in table.blob_columns:
                at = names.index(col.name)
                shas |= {r[at] for r in rows}
    for sha in sorted(shas):
        copied = shutil.copyfile(source.blobs.local_path(sha), folder / "blobs" / sha)
        run.data_bytes += copied.stat().st_size
    run.blobs = len(shas)


def _rows(
    conn: sa.Connection, table: str, key: str, codes: tuple[str, ...]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    tbl = TABLES[table]
    stmt = sa.select(tbl).where(tbl.c.domicile.in_(codes)).order_by(tbl.c[key])
    result = conn.execute(stmt)
    return list(result.keys()), [tuple(r) for r in result]
