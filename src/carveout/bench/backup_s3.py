"""The backup bench's S3 row: a SQLite cell backed up to an S3 site on a private Ceph radosgw,
next to the raw baseline's files (the online backup API + zstd, tar | zstd) uploaded to the same
server with boto3 and downloaded again for the baseline restore."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from carveout.bench.backup_s3server import CephS3, CephS3Error, missing_binaries
from carveout.cells.policy import one_cell_policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOTES = "SQLite cell; site: private Ceph {version} radosgw (memstore OSD) on loopback"
# The baseline as an operator would script it: boto3's managed transfer (multipart, threads).
TRANSFER = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)


@dataclass
class S3Bench:
    """The server, a bucket, and the policy whose `sg` site is that bucket."""

    server: CephS3
    bucket: str
    credentials_file: Path

    def policy(self) -> str:
        spec = (
            f'endpoint = "{self.server.endpoint}", bucket = "{self.bucket}", '
            f'region = "{self.server.region}", prefix = "carveout", '
            f'credentials_file = "{self.credentials_file}"'
        )
        site = '[sites.sg]\ndescription = "Singapore (backup site)"\n'
        return one_cell_policy("sqlite").replace(site, f"{site}s3 = {{ {spec} }}\n", 1)

    def client(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.server.endpoint,
            region_name=self.server.region,
            aws_access_key_id=self.server.access_key,
            aws_secret_access_key=self.server.secret_key,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
        )

    def upload(self, folder: Path, prefix: str) -> None:
        s3 = self.client()
        for path in sorted(folder.iterdir()):
            key = f"baseline/{prefix}/{path.name}"
            s3.upload_file(str(path), self.bucket, key, Config=TRANSFER)

    def download(self, prefix: str, folder: Path) -> None:
        s3 = self.client()
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=f"baseline/{prefix}/")
        for obj in listed.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[1]
            s3.download_file(self.bucket, obj["Key"], str(folder / name), Config=TRANSFER)


def unavailable() -> str:
    """Why the S3 row cannot run here ("" if it can)."""
    missing = missing_binaries()
    if missing:
        return f"skipped: Ceph binaries missing ({', '.join(missing)})"
    return ""


@contextlib.contextmanager
def s3_bench(root: Path) -> Iterator[S3Bench]:
    """A private Ceph (2 GiB of memory for objects), a bucket, a credentials file: all gone
    afterwards."""
    with CephS3(memory_bytes=2 << 30) as server:
        creds = root / "s3-credentials.ini"
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                f"[default]\naws_access_key_id = {server.access_key}\n"
                f"aws_secret_access_key = {server.secret_key}\n"
            )
        bench = S3Bench(server, f"carveout-bench-{secrets.token_hex(4)}", creds)
        bench.client().create_bucket(Bucket=bench.bucket)
        yield bench


__all__ = ["NOTES", "CephS3Error", "S3Bench", "s3_bench", "unavailable"]
