"""`backup run`: snapshot a serving cell and write it, sealed and signed, to its backup site."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carveout.backup.catalog import TMP_PREFIX, connect, prune, sign
from carveout.backup.chunks import CHUNK_SIZE, COMPRESSION, ENCRYPTION, ChunkWriteError, ChunkWriter
from carveout.backup.keys import load_or_create_keys
from carveout.backup.models import (
    BLOB_PREFIX,
    DATABASE_ITEM,
    BackupError,
    BackupResult,
    Manifest,
    Timings,
)
from carveout.backup.sites import Site, backup_site, check_writable, describe_os_error
from carveout.backup.snapshot import snapshot_cell
from carveout.backup.target import cell_exists
from carveout.cells import Deployment
from carveout.core import InvalidInput, NotFound, now_ms

DEFAULT_KEEP = 7


def new_backup_id(at_ms: int) -> str:
    # Sorts by time, so the newest generation is last; the suffix keeps concurrent runs apart.
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(at_ms / 1000))
    return f"{stamp}{at_ms % 1000:03d}Z-{secrets.token_hex(2)}"


def scratch_dir(data_dir: Path) -> Path:
    """Local working space at the primary site, beside the cells (never at a backup site)."""
    root = data_dir / ".scratch"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="backup-", dir=root))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def at_site(site: Site) -> Iterator[None]:
    """An OS error while writing to the site becomes one message naming the site."""
    try:
        yield
    except (ChunkWriteError, OSError) as exc:
        cause = exc.cause if isinstance(exc, ChunkWriteError) else exc
        if site.s3 is not None:  # the local staging copy failed, not the bucket
            raise BackupError(
                f"staging the backup for S3 site {site.name!r} failed on the local disk: {cause}"
            ) from exc
        raise BackupError(describe_os_error(site, cause)) from exc


def run_backup(
    deployment: Deployment,
    cell: str,
    *,
    site: str | None = None,
    keep: int = DEFAULT_KEEP,
    chunk_size: int = CHUNK_SIZE,
) -> BackupResult:
    """Back up a serving cell to the one site its policy allows; keep `keep` generations.

    Everything is checked before the site is touched; the backup is written under a temp name
    and renamed when complete, so a failure leaves nothing at the site."""
    started = time.perf_counter()
    if keep < 1:
        raise InvalidInput("keep must be at least 1 generation")
    if chunk_size < 4096:
        raise InvalidInput("chunk size must be at least 4096 bytes")
    data_dir = deployment.data_dir
    target = backup_site(data_dir, deployment.policy, cell, site)
    spec = deployment.policy.cell(cell)
    if not cell_exists(data_dir, spec):
        raise NotFound(f"cell {cell!r} has no database yet: nothing to back up")
    # An S3 site is checked (bucket there, credentials accepted) before the snapshot.
    bucket = connect(target) if target.s3 is not None else None
    if bucket is not None:
        bucket.check()
    else:
        check_writable(target)
    keys = load_or_create_keys(data_dir, cell)
    serving = deployment.cell(cell)
    created = now_ms()
    backup_id = new_backup_id(created)
    scratch = scratch_dir(data_dir)
    upload_s = 0.0
    # A folder site is written in place under a temp name. To an S3 site the chunks go up as
    # they are sealed; only the manifest and signature are written locally (in the scratch
    # space) before their upload, in that order, last.
    upload = bucket.start_upload(cell, backup_id) if bucket is not None else None
    folder = target.cell_folder(cell) if bucket is None else scratch / "site"
    tmp = folder / f"{TMP_PREFIX}{backup_id}"
    made_folder = not folder.exists()
    try:
        with at_site(target):
            tmp.mkdir(parents=True)
            sink = upload.put if upload is not None else None
            writer = ChunkWriter(tmp, keys.backup_key, backup_id, chunk_size, sink)

        def write_out(database: Path) -> None:
            # Blobs are listed once the snapshot is complete: every blob its rows name exists.
            with at_site(target):
                try:
                    writer.add_file(DATABASE_ITEM, database)
                    for sha in serving.blobs.list():
                        try:
                            path = serving.blobs.local_path(sha)
                        except NotFound:
                            continue  # erased since the listing: the snapshot may predate that
                        writer.add_file(BLOB_PREFIX + sha, path)
                    writer.finish()
                except BaseException:
                    writer.abort()  # its sealing threads stop before the folder goes
                    raise

        snapshot = snapshot_cell(serving, scratch, write_out)
        with at_site(target):
            manifest = Manifest(
                backup_id=backup_id,
                cell=cell,
                site=target.name,
                backend=serving.store.backend,
                snapshot=snapshot.method,
                schema_version=snapshot.schema_version,
                created_at_ms=created,
                key_id=keys.key_id,
                signing_key=keys.public_hex,
                compression=COMPRESSION,
                encryption=ENCRYPTION,
                chunk_size=chunk_size,
                items=tuple(writer.items),
                chunks=tuple(writer.chunks),
                tables=snapshot.tables,
                table_digest=snapshot.table_digest,
            )
            sign(tmp, manifest, keys)
            if upload is not None:
                uploading = time.perf_counter()
                upload.complete(tmp)  # the chunks still in flight, the manifest, the signature
                upload_s = time.perf_counter() - uploading
            else:
                fsync_dir(tmp)
                tmp.rename(folder / backup_id)
                fsync_dir(folder)
    except BaseException:
        if upload is not None:
            upload.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        if made_folder:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: never another backup's folder
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with at_site(target):
        removed = prune(target, cell, keep)
    spent = writer.seconds
    timings = Timings(
        snapshot_s=snapshot.seconds,
        table_checks_s=snapshot.checks_seconds,
        write_out_s=snapshot.write_seconds,
        compress_s=spent["compress"],
        encrypt_s=spent["encrypt"],
        checksum_s=spent["checksum"],
        write_s=spent["write"],
        upload_s=upload_s,
        total_s=time.perf_counter() - started,
    )
    where = str(folder / backup_id)
    if bucket is not None:
        where = (
            f"s3://{bucket.spec.bucket}/{bucket.key(cell, backup_id, '')} at {bucket.spec.endpoint}"
        )
    return BackupResult(manifest, where, removed, timings)
