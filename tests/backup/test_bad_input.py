"""Bad input: clear errors, nothing half-written at the site, the serving cell unaffected."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from backup_env import Env, MakeEnv

from carveout.backup import (
    BackupError,
    KeyMissing,
    restore_backup,
    run_backup,
    verify_backup,
)
from carveout.cells.registry import cell_root
from carveout.core import Forbidden, NotFound, PolicyError


def site_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.is_dir() else []


def leftovers(env: Env) -> list[str]:
    """Staging, scratch and replaced folders a failed step must not leave behind."""
    cells = sorted(p.name for p in (env.data_dir / "cells").iterdir() if p.name.startswith("."))
    scratch = env.data_dir / ".scratch"
    return cells + (site_files(scratch) if scratch.exists() else [])


def test_policy_without_backup_site_is_refused_before_anything(make_env: MakeEnv) -> None:
    env = make_env(backup_site=None)
    before = env.fingerprint()
    with pytest.raises(PolicyError, match="'global' names no backup_site"):
        run_backup(env.deployment, "global")
    assert not (env.data_dir / "sites").exists()
    # The cell's user keys exist from its first open; no backup key was made for it.
    assert not list((env.data_dir / "keys").rglob("backup*.key"))
    assert env.fingerprint() == before


def test_a_site_the_policy_does_not_allow_is_refused(env: Env) -> None:
    before = env.fingerprint()
    with pytest.raises(Forbidden, match="only at site 'sg'; site 'us' is refused"):
        run_backup(env.deployment, "global", site="us")
    assert not (env.data_dir / "sites").exists()
    assert env.fingerprint() == before


def test_a_configured_site_that_is_missing_is_not_created(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    mount = tmp_path / "mnt" / "sg"
    env = make_env(sg_path=str(mount))
    before = env.fingerprint()
    with pytest.raises(BackupError, match=r"site 'sg' is missing: .*mnt/sg does not exist"):
        run_backup(env.deployment, "global")
    assert not mount.exists() and not (tmp_path / "mnt").exists()
    assert env.fingerprint() == before


def test_a_site_that_is_a_file_is_refused(make_env: MakeEnv, tmp_path: Path) -> None:
    site = tmp_path / "sg-site"
    site.write_text("not a folder")
    env = make_env(sg_path=str(site))
    before = env.fingerprint()
    with pytest.raises(BackupError, match="site 'sg' is not a folder"):
        run_backup(env.deployment, "global")
    assert site.read_text() == "not a folder"
    assert env.fingerprint() == before
    assert leftovers(env) == []


# A real full or read-only filesystem, without privileges on the host: a tmpfs mounted in a
# private user and mount namespace, visible only to the backup process started inside it.
SCRIPT = """
import json, sys
from pathlib import Path
from carveout.cells import Deployment
from carveout.backup import run_backup
data_dir, site = Path(sys.argv[1]), Path(sys.argv[2])
deployment = Deployment.open(data_dir)
try:
    run_backup(deployment, "global", chunk_size=16384)
    error = ""
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
finally:
    deployment.close()
print(json.dumps({"error": error, "site": sorted(str(p) for p in site.rglob("*"))}))
"""


def run_in_mount(env: Env, site: Path, options: str) -> dict[str, object]:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user+mount namespaces here: {probe.stderr.decode().strip()}")
    env.deployment.close()
    script = env.tmp / "backup_in_mount.py"
    script.write_text(textwrap.dedent(SCRIPT))
    shell = f'mount -t tmpfs -o {options} tmpfs "$2" && exec "$0" "$3" "$1" "$2"'
    # sh gets $0 = python, $1 = data dir, $2 = site, $3 = script.
    argv = ["unshare", "-rm", "sh", "-c", shell, sys.executable, str(env.data_dir), str(site)]
    proc = subprocess.run(
        [*argv, str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_a_full_site_leaves_nothing_half_written(make_env: MakeEnv, tmp_path: Path) -> None:
    site = tmp_path / "sg-full"
    site.mkdir()
    env = make_env(sg_path=str(site), blobs=3)  # 150 kB of incompressible media
    before = env.fingerprint()
    out = run_in_mount(env, site, "size=64k")
    assert "BackupError: backup site 'sg' is full (No space left on device)" in str(out["error"])
    assert out["site"] == []  # the temp backup was removed inside the namespace
    assert env.fingerprint() == before
    assert leftovers(env) == []


def test_a_read_only_site_is_refused_before_a_byte_is_written(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    site = tmp_path / "sg-ro"
    site.mkdir()
    env = make_env(sg_path=str(site))
    before = env.fingerprint()
    out = run_in_mount(env, site, "ro")
    assert "BackupError: backup site 'sg' is not writable" in str(out["error"])
    assert out["site"] == []
    assert env.fingerprint() == before


def test_missing_key_names_the_file(env: Env) -> None:
    m = run_backup(env.deployment, "global").manifest
    key = env.data_dir / "keys" / "global" / "backup.key"
    key.unlink()
    env.deployment.close()
    before = env.fingerprint()
    for attempt in (verify_backup, functools.partial(restore_backup, replace=True)):
        with pytest.raises(KeyMissing, match=f"backup key of cell 'global' not found at {key}"):
            attempt(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert env.fingerprint() == before
    assert leftovers(env) == []


def test_corrupt_chunk_fails_verify_and_restore_leaving_the_cell_whole(env: Env) -> None:
    m = run_backup(env.deployment, "global", chunk_size=16384).manifest
    folder = env.site / "global" / m.backup_id
    chunk = folder / m.chunks[2].file
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    env.deployment.close()
    before = env.fingerprint()

    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert not result.ok
    assert result.problems == (
        f"chunk 2 (chunks/000002.chunk) of backup {m.backup_id} is corrupt: sha256 "
        + result.problems[0].split("sha256 ", 1)[1],
    )
    with pytest.raises(BackupError, match=r"chunk 2 \(chunks/000002.chunk\) .* is corrupt"):
        restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id, replace=True)
    assert env.fingerprint() == before
    assert leftovers(env) == []


def test_missing_chunk_is_named(env: Env) -> None:
    m = run_backup(env.deployment, "global", chunk_size=16384).manifest
    (env.site / "global" / m.backup_id / m.chunks[-1].file).unlink()
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert not result.ok and result.problems[0].endswith("is missing")


def test_a_flipped_byte_in_the_manifest_breaks_its_signature(env: Env) -> None:
    m = run_backup(env.deployment, "global").manifest
    manifest = env.site / "global" / m.backup_id / "manifest.json"
    text = manifest.read_text()
    # Claim one more row: the kind of edit a signature exists to catch.
    rows = m.tables["users"].rows
    manifest.write_text(text.replace(f'"rows": {rows}', f'"rows": {rows + 1}', 1))
    env.deployment.close()
    before = env.fingerprint()
    with pytest.raises(BackupError, match=r"manifest\.json does not match its signature"):
        restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id, replace=True)
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert not result.ok and "does not match its signature" in result.problems[0]
    assert env.fingerprint() == before


def test_a_backup_from_another_key_is_refused(make_env: MakeEnv) -> None:
    a, b = make_env(), make_env()
    m = run_backup(a.deployment, "global").manifest
    run_backup(b.deployment, "global")  # b's own keys
    shutil.copytree(a.site / "global" / m.backup_id, b.site / "global" / m.backup_id)
    with pytest.raises(BackupError, match="does not match its signature"):
        restore_backup(b.data_dir, b.deployment.policy, "global", m.backup_id, replace=True)


def test_unknown_backup_id_lists_what_exists(env: Env) -> None:
    m = run_backup(env.deployment, "global").manifest
    with pytest.raises(NotFound, match=f"no backup 'nope'.*latest there: {m.backup_id}"):
        verify_backup(env.data_dir, env.deployment.policy, "global", "nope")
    assert cell_root(env.data_dir, "global").exists()
