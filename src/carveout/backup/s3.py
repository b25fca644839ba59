"""S3-compatible backup sites: a backup's objects in a bucket, its signature uploaded last.

Layout mirrors a folder site: `<prefix>/<cell>/<backup id>/chunks/NNNNNN.chunk`, `manifest.json`,
`manifest.sig`, `verify.json`. S3 has no rename, so completeness is marked the way a folder site
marks it too: `manifest.sig` is uploaded only after every chunk and the manifest are stored, and
a backup without it is never listed, verified or restored. A writer that fails removes what it
uploaded; one that could not (killed, site gone mid-write) leaves objects that the next
`backup run` of the cell removes once they are older than `LEFTOVER_GRACE_S`, so a slow writer
still running is never pulled from under.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from carveout.backup.models import MANIFEST, SIGNATURE, BackupError
from carveout.backup.sites import Site

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

LEFTOVER_GRACE_S = 3600.0  # unsigned objects younger than this may belong to a running writer
UPLOAD_THREADS = 4  # chunks uploaded at once: one PUT's latency hides behind the others'
DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
MISSING_BUCKET = {"NoSuchBucket", "404", "NotFound"}


def env_names(site: str) -> tuple[str, str]:
    stem = f"CARVEOUT_S3_{site.upper().replace('-', '_')}"
    return f"{stem}_ACCESS_KEY_ID", f"{stem}_SECRET_ACCESS_KEY"


def credentials(site: Site) -> tuple[str, str] | None:
    """The site's key pair: the policy's credentials_file, else the site's environment
    variables, else None (boto3's own chain: AWS_ACCESS_KEY_ID, ~/.aws, instance roles)."""
    assert site.s3 is not None
    spec = site.s3
    if spec.credentials_file is not None:
        path = Path(spec.credentials_file).expanduser()
        parser = configparser.ConfigParser()
        try:
            with path.open(encoding="utf-8") as fh:
                parser.read_file(fh)
        except (OSError, configparser.Error) as exc:
            raise BackupError(
                f"credentials file of S3 site {site.name!r} unreadable: {path} ({exc})"
            ) from None
        section = parser[spec.profile] if parser.has_section(spec.profile) else None
        key = section.get("aws_access_key_id") if section else None
        secret = section.get("aws_secret_access_key") if section else None
        if not key or not secret:
            raise BackupError(
                f"credentials file {path} of S3 site {site.name!r} has no [{spec.profile}] "
                "aws_access_key_id and aws_secret_access_key"
            )
        return key, secret
    key_var, secret_var = env_names(site.name)
    key, secret = os.environ.get(key_var), os.environ.get(secret_var)
    if key and secret:
        return key, secret
    return None


class S3Site:
    """A connected S3 backup site; every failure surfaces as a BackupError naming the site."""

    def __init__(self, site: Site) -> None:
        if site.s3 is None:
            raise ValueError(f"site {site.name!r} is a folder, not an S3 bucket")
        self.site = site
        self.spec = site.s3
        self.root = f"{self.spec.prefix}/" if self.spec.prefix else ""
        pair = credentials(site)
        config = Config(
            # Path-style (endpoint/bucket/key): S3-compatible servers rarely have wildcard DNS.
            s3={"addressing_style": "path"},
            connect_timeout=self.spec.timeout_s,
            read_timeout=self.spec.timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            # Integrity is ours: Content-MD5 on upload, the manifest's sha256 on download. The
            # newer default CRC trailers are not understood by every S3-compatible server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=UPLOAD_THREADS * 2,
        )
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.spec.endpoint,
            region_name=self.spec.region,
            aws_access_key_id=pair[0] if pair else None,
            aws_secret_access_key=pair[1] if pair else None,
            config=config,
        )

    # -- keys ------------------------------------------------------------------------------

    def cell_prefix(self, cell: str) -> str:
        return f"{self.root}{cell}/"

    def key(self, cell: str, backup_id: str, name: str) -> str:
        return f"{self.root}{cell}/{backup_id}/{name}"

    # -- errors ----------------------------------------------------------------------------

    def _fail(self, action: str, exc: Exception) -> NoReturn:
        where = f"S3 backup site {self.site.name!r} ({self.site.location})"
        if isinstance(exc, NoCredentialsError):
            first, second = env_names(self.site.name)
            raise BackupError(
                f"{where}: no credentials: set {first} and {second}, or name a "
                "credentials_file in the site's s3 table"
            ) from exc
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in MISSING_BUCKET and action in ("check", "list"):
                raise BackupError(
                    f"{where}: bucket {self.spec.bucket!r} does not exist (create it, or fix the "
                    "policy's bucket name)"
                ) from exc
            if code in DENIED:
                raise BackupError(
                    f"{where}: access denied while trying to {action} ({code}): wrong or "
                    "insufficient credentials"
                ) from exc
            message = error.get("Message", "")
            raise BackupError(f"{where}: {action} failed: {code} {message}") from exc
        if isinstance(exc, BotoConnectionError | HTTPClientError):  # refused, timed out, cut
            raise BackupError(f"{where} is unreachable while trying to {action}: {exc}") from exc
        raise BackupError(f"{where}: {action} failed: {exc}") from exc

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            self._fail(action, exc)

    # -- checks and listing ----------------------------------------------------------------

    def check(self) -> None:
        """The bucket exists and these credentials may use it: checked before any write."""
        with self._errors("check"):
            self.client.head_bucket(Bucket=self.spec.bucket)

    def objects(self, cell: str) -> dict[str, dict[str, float]]:
        """backup id -> {object name within the backup: last-modified time (epoch s)}."""
        out: dict[str, dict[str, float]] = {}
        prefix = self.cell_prefix(cell)
        with self._errors("list"):
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.spec.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    backup_id, _, name = obj["Key"].removeprefix(prefix).partition("/")
                    out.setdefault(backup_id, {})[name] = obj["LastModified"].timestamp()
        return out

    def backup_ids(self, cell: str) -> list[str]:
        """Complete (signed) backups of the cell, oldest first."""
        return sorted(i for i, names in self.objects(cell).items() if SIGNATURE in names)

    # -- objects ---------------------------------------------------------------------------

    def read(self, cell: str, backup_id: str, name: str) -> bytes:
        """An object's bytes; FileNotFoundError if it is not there (as a folder site would)."""
        key = self.key(cell, backup_id, name)
        try:
            return self.client.get_object(Bucket=self.spec.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                raise FileNotFoundError(2, "no such object", key) from None
            self._fail(f"read {key}", exc)
        except BotoCoreError as exc:
            self._fail(f"read {key}", exc)

    def write(self, cell: str, backup_id: str, name: str, data: bytes) -> None:
        key = self.key(cell, backup_id, name)
        # Content-MD5: the server refuses a body damaged on the way instead of storing it.
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        with self._errors(f"write {key}"):
            self.client.put_object(Bucket=self.spec.bucket, Key=key, Body=data, ContentMD5=md5)

    def start_upload(self, cell: str, backup_id: str) -> Upload:
        return Upload(self, cell, backup_id)

    def delete(self, cell: str, backup_id: str, names: list[str] | None = None) -> None:
        """Remove a backup's objects, the signature first: a removal cut short leaves an
        unsigned (unlisted) remainder, never a listed backup with missing chunks."""
        if names is None:
            names = list(self.objects(cell).get(backup_id, {}))
        keys = [self.key(cell, backup_id, n) for n in names]
        signature = self.key(cell, backup_id, SIGNATURE)
        with self._errors(f"delete backup {backup_id}"):
            if signature in keys:
                self.client.delete_object(Bucket=self.spec.bucket, Key=signature)
                keys.remove(signature)
            for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
                batch: list[ObjectIdentifierTypeDef] = [
                    {"Key": k} for k in keys[start : start + 1000]
                ]
                result = self.client.delete_objects(
                    Bucket=self.spec.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                if result.get("Errors"):
                    first = result["Errors"][0]
                    raise BackupError(
                        f"S3 backup site {self.site.name!r}: could not delete "
                        f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    )

    def remove_leftovers(self, cell: str, grace_s: float = LEFTOVER_GRACE_S) -> tuple[str, ...]:
        """Unsigned backups whose newest object is older than `grace_s`: interrupted writers'."""
        now = time.time()
        removed = []
        for backup_id, names in sorted(self.objects(cell).items()):
            if SIGNATURE not in names and now - max(names.values()) >= grace_s:
                self.delete(cell, backup_id, list(names))
                removed.append(backup_id)
        return tuple(removed)


class Upload:
    """One backup going up: chunks uploaded as the writer seals them (overlapping the
    write-out, no local copy), then the manifest, then the signature last.

    At most `IN_FLIGHT` chunks wait in memory; the writer blocks on the next one until a slot
    frees, so a slow site slows the backup instead of filling memory. An upload failure stops
    the writer at its next chunk."""

    IN_FLIGHT = UPLOAD_THREADS * 2

    def __init__(self, site: S3Site, cell: str, backup_id: str) -> None:
        self.site = site
        self.cell = cell
        self.backup_id = backup_id
        self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="backup-upload")
        self._slots = threading.BoundedSemaphore(self.IN_FLIGHT)
        self._futures: list[Future[None]] = []

    def put(self, name: str, data: bytes) -> None:
        """Queue one object (called by ChunkWriter from the write-out thread)."""
        self._raise_failure()
        self._slots.acquire()
        try:
            self._futures.append(self._pool.submit(self._put, name, data))
        except BaseException:
            self._slots.release()
            raise

    def _put(self, name: str, data: bytes) -> None:
        try:
            self.site.write(self.cell, self.backup_id, name, data)
        finally:
            self._slots.release()

    def _raise_failure(self) -> None:
        # Finished uploads are dropped as they are seen: the list stays as short as the queue.
        pending = []
        for future in self._futures:
            if future.done():
                future.result()  # re-raises its failure
            else:
                pending.append(future)
        self._futures = pending

    def complete(self, folder: Path) -> None:
        """Wait for every chunk, then upload the manifest and, last, its signature."""
        self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()
        self.site.write(self.cell, self.backup_id, MANIFEST, (folder / MANIFEST).read_bytes())
        # Last: its presence is what makes the backup complete and listed.
        self.site.write(self.cell, self.backup_id, SIGNATURE, (folder / SIGNATURE).read_bytes())

    def abort(self) -> None:
        """Stop, then remove whatever was uploaded (best effort: if the site is gone, the
        objects stay unsigned, so unlisted, and a later run removes them)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(BackupError):
            self.site.delete(self.cell, self.backup_id)
