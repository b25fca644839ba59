"""S3 backup sites against a real S3 server (Ceph's radosgw, started by the tests): run, list,
verify, restore, retention, and the failures: missing bucket, wrong key, unreachable endpoint,
no credentials, a damaged object, an upload cut off half-way."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from backup_env import Env, MakeEnv, add_blob, add_users
from botocore.config import Config

from carveout.backup import (
    BackupError,
    list_backups,
    restore_backup,
    run_backup,
    verify_backup,
)
from carveout.backup.catalog import backup_ids
from carveout.backup.s3 import S3Site
from carveout.backup.sites import backup_site
from carveout.bench.backup_s3server import CephS3
from carveout.cells import parse_policy
from carveout.core import Forbidden, PolicyError

S3_ONLY = pytest.mark.s3


class Bucket:
    """The test's own view of the bucket, through a plain boto3 client (no carveout code)."""

    def __init__(self, server: CephS3, name: str) -> None:
        self.name = name
        self.client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name=server.region,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def listing(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def backups(self, cell: str = "global") -> set[str]:
        """Every backup id with any object in the bucket, complete or not."""
        return {k.split("/")[2] for k in self.listing() if k.startswith(f"site/{cell}/")}


@pytest.fixture
def s3_creds(ceph_s3: CephS3, monkeypatch: pytest.MonkeyPatch) -> CephS3:
    """Credentials only where production keeps them: the environment, never the policy."""
    monkeypatch.setenv("CARVEOUT_S3_SG_ACCESS_KEY_ID", ceph_s3.access_key)
    monkeypatch.setenv("CARVEOUT_S3_SG_SECRET_ACCESS_KEY", ceph_s3.secret_key)
    return ceph_s3


@pytest.fixture
def bucket(s3_creds: CephS3) -> Iterator[Bucket]:
    made = Bucket(s3_creds, f"carveout-{secrets.token_hex(6)}")
    made.client.create_bucket(Bucket=made.name)
    yield made
    for key in made.listing():
        made.client.delete_object(Bucket=made.name, Key=key)
    made.client.delete_bucket(Bucket=made.name)


def s3_table(server: CephS3, bucket: str, **extra: str | float) -> str:
    fields = {"endpoint": server.endpoint, "bucket": bucket, "region": server.region}
    fields |= {"prefix": "site", **extra}
    return ", ".join(
        f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()
    )


@pytest.fixture
def s3env(make_env: MakeEnv, s3_creds: CephS3, bucket: Bucket) -> Env:
    return make_env(sg_s3=s3_table(s3_creds, bucket.name))


# -- the policy (no server needed) --------------------------------------------------------


def test_credentials_in_the_policy_are_refused() -> None:
    text = """version = 1
[sites.us]
[sites.sg]
s3 = { endpoint = "http://127.0.0.1:9", bucket = "b", secret_access_key = "x" }
[cells.global]
jurisdictions = ["*"]
primary_site = "us"
backup_site = "sg"
"""
    with pytest.raises(PolicyError, match="credentials do not belong in the residency policy"):
        parse_policy(text)
    clean = text.replace(', secret_access_key = "x"', "")
    assert parse_policy(clean).site_s3["sg"].bucket == "b"
    with pytest.raises(PolicyError, match="both a path and an s3 bucket"):
        parse_policy(clean.replace("s3 =", 'path = "/m"\ns3 ='))
    with pytest.raises(PolicyError, match="endpoint must be an http"):
        parse_policy(clean.replace('"http://127.0.0.1:9"', '"ftp://x"'))


# -- against the real server --------------------------------------------------------------


@S3_ONLY
def test_the_private_server_speaks_s3(bucket: Bucket) -> None:
    """What the fixture is for: a real S3 implementation (put, list, get, multipart, delete)."""
    import io

    from boto3.s3.transfer import TransferConfig

    s3 = bucket.client
    s3.put_object(Bucket=bucket.name, Key="a/small", Body=b"hello")
    big = secrets.token_bytes(12 << 20)
    multipart = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_fileobj(io.BytesIO(big), bucket.name, "a/big", Config=multipart)
    assert bucket.listing() == ["a/big", "a/small"]
    got = s3.get_object(Bucket=bucket.name, Key="a/big")
    assert got["ETag"].endswith('-3"')  # assembled from 3 parts by the server
    assert got["Body"].read() == big
    assert s3.get_object(Bucket=bucket.name, Key="a/small")["Body"].read() == b"hello"
    s3.delete_object(Bucket=bucket.name, Key="a/small")
    assert bucket.listing() == ["a/big"]


@S3_ONLY
def test_s3_backup_verifies_restores_and_lists(s3env: Env, bucket: Bucket) -> None:
    before = s3env.fingerprint()
    result = run_backup(s3env.deployment, "global", chunk_size=16384)
    backup_id = result.manifest.backup_id
    keys = bucket.listing()
    # Every chunk, the manifest and its signature: nothing written to any local site folder.
    assert f"site/global/{backup_id}/manifest.sig" in keys
    assert len([k for k in keys if "/chunks/" in k]) == len(result.manifest.chunks) > 3
    assert not (s3env.data_dir / "sites").exists()
    assert list((s3env.data_dir / ".scratch").iterdir()) == []

    listed = list_backups(s3env.data_dir, s3env.deployment.policy, "global")
    assert [(b.backup_id, b.site, b.verification) for b in listed] == [(backup_id, "sg", None)]
    checked = verify_backup(s3env.data_dir, s3env.deployment.policy, "global", backup_id)
    assert checked.ok, checked.problems
    assert f"site/global/{backup_id}/verify.json" in bucket.listing()
    listed = list_backups(s3env.data_dir, s3env.deployment.policy, "global")
    assert listed[0].verification is not None and listed[0].verification.ok

    add_users(s3env.cell, 3)  # changes after the backup must go with the restore
    assert s3env.fingerprint() != before
    s3env.deployment.close()  # a restore replaces the cell's files: stop serving it first
    restore_backup(s3env.data_dir, s3env.deployment.policy, "global", backup_id, replace=True)
    assert s3env.fingerprint() == before


@S3_ONLY
def test_s3_retention_keeps_n_generations(s3env: Env, bucket: Bucket) -> None:
    made = [run_backup(s3env.deployment, "global", keep=2).manifest.backup_id for _ in range(3)]
    site = backup_site(s3env.data_dir, s3env.deployment.policy, "global")
    assert backup_ids(site, "global") == made[1:]
    assert bucket.backups() == set(made[1:])  # the oldest one's objects are all gone


@S3_ONLY
def test_a_site_the_policy_does_not_allow_writes_nothing_to_the_bucket(
    s3env: Env, bucket: Bucket
) -> None:
    with pytest.raises(Forbidden, match="site 'us' is refused"):
        run_backup(s3env.deployment, "global", site="us")
    assert bucket.listing() == []


@S3_ONLY
def test_a_missing_bucket_is_a_clear_error(make_env: MakeEnv, s3_creds: CephS3) -> None:
    env = make_env(sg_s3=s3_table(s3_creds, "carveout-no-such-bucket"))
    before = env.fingerprint()
    with pytest.raises(BackupError, match="bucket 'carveout-no-such-bucket' does not exist"):
        run_backup(env.deployment, "global")
    with pytest.raises(BackupError, match="does not exist"):
        list_backups(env.data_dir, env.deployment.policy, "global")
    assert env.fingerprint() == before
    assert not (env.data_dir / "sites").exists()


@S3_ONLY
def test_wrong_credentials_are_refused_before_a_byte_is_written(
    s3env: Env, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARVEOUT_S3_SG_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(BackupError, match=r"access denied .*wrong or insufficient credentials"):
        run_backup(s3env.deployment, "global")
    assert bucket.listing() == []
    monkeypatch.setenv("CARVEOUT_S3_SG_ACCESS_KEY_ID", "NOSUCHKEY")
    with pytest.raises(BackupError, match="access denied"):
        run_backup(s3env.deployment, "global")
    assert bucket.listing() == []


@S3_ONLY
def test_no_credentials_names_where_to_put_them(
    make_env: MakeEnv, ceph_s3: CephS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = make_env(sg_s3=s3_table(ceph_s3, "whatever"))
    with pytest.raises(BackupError, match="no credentials: set CARVEOUT_S3_SG_ACCESS_KEY_ID"):
        run_backup(env.deployment, "global")


@S3_ONLY
def test_a_credentials_file_named_in_the_policy(
    make_env: MakeEnv, ceph_s3: CephS3, bucket: Bucket, tmp_path: Path
) -> None:
    creds = tmp_path / "s3-sg.ini"
    creds.write_text(
        f"[backup]\naws_access_key_id = {ceph_s3.access_key}\n"
        f"aws_secret_access_key = {ceph_s3.secret_key}\n"
    )
    env = make_env(
        sg_s3=s3_table(ceph_s3, bucket.name, credentials_file=str(creds), profile="backup")
    )
    backup_id = run_backup(env.deployment, "global").manifest.backup_id
    assert verify_backup(env.data_dir, env.deployment.policy, "global", backup_id).ok
    creds.write_text("[backup]\naws_access_key_id = x\n")
    with pytest.raises(BackupError, match=r"has no \[backup\] aws_access_key_id"):
        run_backup(env.deployment, "global")


@S3_ONLY
def test_an_unreachable_endpoint_is_a_clear_error(make_env: MakeEnv, s3_creds: CephS3) -> None:
    from carveout.storage.pgcluster import free_port

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = make_env(sg_s3=s3_table(s3_creds, "b-x", timeout_s=2).replace(s3_creds.endpoint, closed))
    before = env.fingerprint()
    with pytest.raises(BackupError, match=r"S3 backup site 'sg' .* is unreachable"):
        run_backup(env.deployment, "global")
    assert env.fingerprint() == before


@S3_ONLY
def test_a_damaged_object_is_caught_on_download(s3env: Env, bucket: Bucket) -> None:
    result = run_backup(s3env.deployment, "global", chunk_size=16384)
    backup_id = result.manifest.backup_id
    key = f"site/global/{backup_id}/{result.manifest.chunks[1].file}"
    data = bytearray(bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read())
    data[100] ^= 0x01
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=bytes(data))
    checked = verify_backup(s3env.data_dir, s3env.deployment.policy, "global", backup_id)
    assert not checked.ok
    assert "chunk 1 (chunks/000001.chunk)" in checked.problems[0]
    assert "is corrupt" in checked.problems[0]
    with pytest.raises(BackupError, match="is corrupt"):
        restore_backup(s3env.data_dir, s3env.deployment.policy, "global", backup_id, replace=True)


@S3_ONLY
@pytest.mark.slow  # about 25 s: the frozen site's timeouts and retries run out
def test_an_upload_cut_off_half_way_is_never_listed_and_is_cleaned_up(
    make_env: MakeEnv, s3_creds: CephS3, bucket: Bucket
) -> None:
    env = make_env(sg_s3=s3_table(s3_creds, bucket.name, timeout_s=1), blobs=0)
    for _ in range(8):  # ~2 MB of incompressible media in 4 KiB chunks: ~500 uploads
        add_blob(env.cell, add_users(env.cell, 1)[0], env.tmp, size=250_000)
    failure: list[BaseException] = []

    def backup() -> None:
        try:
            run_backup(env.deployment, "global", chunk_size=4096)
        except BaseException as exc:
            failure.append(exc)

    writer = threading.Thread(target=backup)
    writer.start()
    # The site goes away (its gateway frozen) once the first chunks have landed.
    deadline = time.monotonic() + 60
    while not [k for k in bucket.listing() if "/chunks/" in k]:
        assert time.monotonic() < deadline and writer.is_alive(), "no chunk ever uploaded"
        time.sleep(0.02)
    s3_creds.suspend()
    try:
        writer.join(timeout=120)
    finally:
        s3_creds.resume()
    assert not writer.is_alive()
    assert failure and isinstance(failure[0], BackupError), failure
    assert "is unreachable" in str(failure[0])
    time.sleep(1)  # requests the frozen gateway had queued land now; still no signature
    assert list_backups(env.data_dir, env.deployment.policy, "global") == []
    partial = bucket.backups()
    assert len(partial) == 1 and not [k for k in bucket.listing() if k.endswith("manifest.sig")]

    site = backup_site(env.data_dir, env.deployment.policy, "global")
    bucket_site = S3Site(site)
    assert bucket_site.remove_leftovers("global", grace_s=3600) == ()  # may still be writing
    assert bucket_site.remove_leftovers("global", grace_s=0) == tuple(partial)
    assert bucket.listing() == []
    done = run_backup(env.deployment, "global")
    assert verify_backup(env.data_dir, env.deployment.policy, "global", done.manifest.backup_id).ok


@S3_ONLY
def test_the_cli_on_an_s3_site(s3env: Env, bucket: Bucket, ceph_s3: CephS3) -> None:
    from test_backup_cli import cli

    d = ["--data-dir", str(s3env.data_dir)]
    before = s3env.fingerprint()
    s3env.deployment.close()
    ran = cli("run", "--cell", "global", *d)
    assert ran.exit_code == 0, ran.output
    backup_id = ran.output.split()[1]
    assert f"written to site sg (s3://{bucket.name}/site/global/{backup_id}/ at " in ran.output
    listed = cli("list", "--cell", "global", *d)
    assert backup_id in listed.output and "never" in listed.output
    verified = cli("verify", "--cell", "global", *d)
    assert f"backup {backup_id} of cell global verified" in verified.output, verified.output
    assert "ok " in cli("list", "--cell", "global", *d).output
    restored = cli("restore", "--cell", "global", "--backup", backup_id, "--replace", *d)
    assert restored.exit_code == 0, restored.output
    assert s3env.fingerprint() == before
    missing = cli("verify", "--cell", "global", "--backup", "20990101T000000000Z-0000", *d)
    assert missing.exit_code == 1
    assert f"latest there: {backup_id}" in missing.output


def test_a_backup_site_that_is_the_primary_sites_bucket_is_refused(tmp_path: Path) -> None:
    bucket = 's3 = { endpoint = "https://s3.example/", bucket = "b", prefix = "x" }'
    text = f"""version = 1
[sites.us]
{bucket}
[sites.sg]
{bucket.replace("https://s3.example/", "https://S3.example")}
[cells.global]
jurisdictions = ["*"]
primary_site = "us"
backup_site = "sg"
"""
    with pytest.raises(PolicyError, match="point at the same bucket s3://b/x"):
        backup_site(tmp_path, parse_policy(text), "global")
    other = parse_policy(text.replace('prefix = "x" }\n[cells', 'prefix = "y" }\n[cells'))
    assert backup_site(tmp_path, other, "global").s3 is not None


def test_a_carve_rewriting_the_policy_keeps_the_s3_site() -> None:
    from carveout.cells.policy_edit import render_policy

    text = """version = 1
[sites.us]
[sites.sg]
s3 = { endpoint = "https://s3.example", bucket = "b", prefix = "p/", credentials_file = "/c" }
[cells.global]
jurisdictions = ["*"]
primary_site = "us"
backup_site = "sg"
"""
    policy = parse_policy(text)
    assert policy.site_s3["sg"].prefix == "p"
    assert parse_policy(render_policy(policy)).site_s3 == policy.site_s3
