"""The transfer bundle's import: every chunk checked before anything loads, then the rows,
blob files and keys into a new cell chunk by chunk, each committed with the progress that
records it (resumable), verified beside the load, counters written, leak-scanned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import zstandard

from carveout.carve import keys, state
from carveout.carve.bundle_crypto import (
    BundleError,
    check_key,
    check_manifest,
    load_private,
    open_sealed,
    recipient_cipher,
)
from carveout.carve.bundle_format import (
    MANIFEST,
    Progress,
    check_chunks,
    read_manifest,
)
from carveout.carve.bundle_load import load
from carveout.carve.bundle_verify import Verifier, drop_indexes, verify_blobs
from carveout.carve.verify import LeakReport, leak_scan
from carveout.cells import (
    POLICY_FILE,
    Cell,
    CellSpec,
    Deployment,
    open_cell,
    with_new_cell,
    write_policy_atomically,
)
from carveout.core import Conflict
from carveout.core.heap import collections_paused
from carveout.datamap import TABLES
from carveout.events import Recount
from carveout.storage import create_migrated_database, schema_head


@dataclass(frozen=True)
class ImportReport:
    target: str
    chunks: int
    resumed_from: int
    rows: dict[str, int]
    blobs: int
    leaks: LeakReport


# The rows parsed (import) or encoded (export) are hundreds of thousands of objects, which the
# cyclic collector would walk again and again: 0.12 of the 0.6 CPU-seconds of an import of
# 77,101 rows. They hold no cycles; the few that SQLAlchemy makes meanwhile wait for the next
# collection after it.
@collections_paused()
def import_bundle(
    deployment: Deployment,
    bundle: Path,
    key: Path,
    target: str,
    *,
    storage: str = "sqlite",
    primary_site: str | None = None,
    backup_site: str | None = None,
    progress: Progress = lambda _w, _n: None,
) -> ImportReport:
    manifest = read_manifest(bundle)
    if manifest["schema_version"] != schema_head():
        raise BundleError(
            f"the bundle has schema {manifest['schema_version']}, this carveout {schema_head()}"
        )
    cipher = recipient_cipher(
        load_private(key), bytes.fromhex(manifest["ephemeral_public_key"]), manifest["bundle_id"]
    )
    check_key(cipher, bytes.fromhex(manifest["key_check"]))
    if manifest["format"] >= 2:
        check_manifest(cipher, manifest, str(bundle / MANIFEST))
    check_chunks(bundle, manifest)
    codes = tuple(manifest["jurisdictions"])
    default = deployment.policy.cells[0]
    spec = CellSpec(
        name=target,
        jurisdictions=codes,
        serves_rest=False,
        primary_site=primary_site or default.primary_site,
        backup_site=backup_site if backup_site is not None else default.backup_site,
        content_exchange=False,
        storage=storage,
    )
    key_chunks = [c for c in manifest["chunks"] if c["kind"] == "keys"]
    handed: keys.KeyHandover | None = None
    if key_chunks:
        chunk = key_chunks[0]
        sealed = (bundle / chunk["file"]).read_bytes()
        plain_keys = open_sealed(cipher, chunk["index"], sealed, f"chunk {chunk['index']:06d}")
        handed = keys.parse_keys(zstandard.ZstdDecompressor().decompress(plain_keys), codes)
        keys.adopt_lookup_bytes(deployment.data_dir, target, handed.lookup_key)
    cell = _open_import_target(deployment, spec, manifest["bundle_id"])
    with cell.store.connect() as conn:
        start = int(state.get(conn, "import:next_chunk", 1))
    # A new cell: the secondary indexes of the tables still to load are built once after
    # their rows are in. A resumed import drops what an interrupted one built meanwhile.
    drop_indexes(
        cell,
        {c["table"] for c in manifest["chunks"] if c["kind"] == "rows" and c["index"] >= start},
    )
    # The counters are counted from the rows as they are parsed, when this run parses them all.
    rows_chunks = [c["index"] for c in manifest["chunks"] if c["kind"] == "rows"]
    recount = Recount() if start <= min(rows_chunks, default=start) else None
    with Verifier(cell, manifest, start, recount) as verifier:
        rows, blobs = load(
            cell, bundle, manifest, cipher, start, handed, verifier, progress, recount
        )
        verifier.finish()
    verify_blobs(cell, manifest)
    leaks = leak_scan(cell, codes)
    if leaks.leaks:
        raise BundleError(f"leak scan of the imported cell found {leaks.leaks} foreign items")
    deployment.refresh_policy()
    if target not in deployment.policy.names:
        write_policy_atomically(
            deployment.data_dir / POLICY_FILE, with_new_cell(deployment.policy, spec)
        )
        deployment.refresh_policy()
    return ImportReport(target, len(manifest["chunks"]), start, rows, blobs, leaks)


def _open_import_target(deployment: Deployment, spec: CellSpec, bundle_id: str) -> Cell:
    existing = spec.name in deployment.policy.names
    if spec.storage != "sqlite" and not existing:
        # A new PostgreSQL cell's database copied from the migrated template: the schema the
        # migrations give without running them (0.1-0.3 s of the import). A database that
        # exists (a resumed import) is left as it is.
        create_migrated_database(spec.storage)
    cell = open_cell(deployment.data_dir, spec)
    with cell.store.begin() as conn:
        seen = state.get(conn, "import:bundle")
        if seen is None and (existing or _has_rows(conn)):
            raise Conflict(f"cell {spec.name!r} exists and holds data: import into a new cell")
        if seen is not None and seen != bundle_id:
            raise Conflict(f"cell {spec.name!r} was imported from another bundle ({seen})")
        state.put(conn, "import:bundle", bundle_id)
    return cell


def _has_rows(conn: sa.Connection) -> bool:
    users = TABLES["users"]
    return conn.execute(sa.select(users.c.id).limit(1)).first() is not None
