"""The restore's unpacking: every chunk authenticated in its place, every item tiled from the
signed manifest; moved, copied, dropped or cut chunks and forged layouts refused by name."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from backup_env import Env, MakeEnv
from test_bad_input import leftovers
from test_digest import _resign

from carveout.backup import BackupError, load_keys, restore_backup, run_backup, verify_backup
from carveout.backup.chunks import NONCE, aad, backup_key
from carveout.backup.models import Chunk, Item, Manifest
from carveout.backup.pgtools import libpq_url

CHUNK = 16_384


@pytest.fixture
def backup(env: Env) -> Manifest:
    """A backup in 16 KiB chunks (random blob bytes: chunks of equal stored size)."""
    m = run_backup(env.deployment, "global", chunk_size=CHUNK).manifest
    env.deployment.close()
    return m


def _folder(env: Env, m: Manifest) -> Path:
    return env.site / "global" / m.backup_id


def _refused(env: Env, m: Manifest, message: str) -> None:
    """Restore and verify both fail with `message`; the cell and the data dir are untouched."""
    before = env.fingerprint()
    with pytest.raises(BackupError, match=message):
        restore_backup(env.data_dir, env.deployment.policy, "global", m.backup_id, replace=True)
    result = verify_backup(env.data_dir, env.deployment.policy, "global", m.backup_id)
    assert not result.ok and len(result.problems) == 1, result.problems
    assert re.search(message, result.problems[0]), result.problems
    assert env.fingerprint() == before
    assert leftovers(env) == []


def _same_size_pair(m: Manifest) -> tuple[Chunk, Chunk]:
    sizes: dict[int, Chunk] = {}
    for chunk in m.chunks:
        if chunk.stored_size in sizes:
            return sizes[chunk.stored_size], chunk
        sizes[chunk.stored_size] = chunk
    raise AssertionError("no two chunks of one size")


def test_two_chunks_swapped_are_refused_naming_the_first(env: Env, backup: Manifest) -> None:
    # Same size, both authentic: only the index bound into each one's tag tells them apart.
    a, b = _same_size_pair(backup)
    folder = _folder(env, backup)
    first, second = (folder / a.file).read_bytes(), (folder / b.file).read_bytes()
    (folder / a.file).write_bytes(second)
    (folder / b.file).write_bytes(first)
    _refused(env, backup, rf"^chunk {a.index} \({a.file}\) of backup \S+ is corrupt: sha256 ")


def test_a_chunk_copied_over_another_is_refused(env: Env, backup: Manifest) -> None:
    a, b = _same_size_pair(backup)
    folder = _folder(env, backup)
    shutil.copyfile(folder / a.file, folder / b.file)
    _refused(env, backup, rf"^chunk {b.index} \({b.file}\) of backup \S+ is corrupt")


def test_a_dropped_chunk_is_refused(env: Env, backup: Manifest) -> None:
    middle = backup.chunks[len(backup.chunks) // 2]
    (_folder(env, backup) / middle.file).unlink()
    _refused(env, backup, rf"^chunk {middle.index} \({middle.file}\) of backup \S+ is missing$")


def test_a_truncated_chunk_is_refused(env: Env, backup: Manifest) -> None:
    last = backup.chunks[-1]
    path = _folder(env, backup) / last.file
    path.write_bytes(path.read_bytes()[:-1])
    _refused(
        env, backup, rf"^chunk {last.index} \({last.file}\) .* \({last.stored_size - 1} bytes\)"
    )


def test_a_chunk_from_another_backup_of_the_cell_is_refused(env: Env, backup: Manifest) -> None:
    # The same cell key, the same index, its own backup id: the per-backup key and the id in
    # the tag refuse it.
    env.deployment.cell("global")
    other = run_backup(env.deployment, "global", chunk_size=CHUNK, keep=2).manifest
    env.deployment.close()
    shutil.copyfile(
        _folder(env, other) / other.chunks[1].file, _folder(env, backup) / backup.chunks[1].file
    )
    _refused(env, backup, r"^chunk 1 \(chunks/000001.chunk\) of backup \S+ is corrupt")


Edit = Callable[[Manifest], Manifest]


def _items(m: Manifest, items: list[Item]) -> Manifest:
    return dataclasses.replace(m, items=tuple(items))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: dataclasses.replace(m, chunks=(m.chunks[1], m.chunks[0], *m.chunks[2:])),
            "its manifest lists its chunks out of order",
        ),
        (lambda m: _items(m, list(m.items[:-1])), "holds bytes no item accounts for"),
        (
            lambda m: dataclasses.replace(m, chunks=m.chunks[:-1]),
            "its stream ends before its last item",
        ),
        (
            lambda m: _items(
                m,
                [
                    m.items[0],
                    dataclasses.replace(m.items[1], offset=m.items[1].offset + 1),
                    *m.items[2:],
                ],
            ),
            "does not start where the item before ends",
        ),
        (
            lambda m: _items(
                m,
                [
                    *m.items,
                    dataclasses.replace(
                        m.items[-1], offset=m.items[-1].offset + m.items[-1].size, size=0
                    ),
                ],
            ),
            "its manifest lists one file twice",
        ),
    ],
    ids=["chunks-reordered", "item-dropped", "chunk-dropped", "gap", "file-twice"],
)
def test_a_signed_manifest_whose_layout_does_not_tile_is_refused(
    env: Env, backup: Manifest, edit: Edit, message: str
) -> None:
    """Signed with the cell's own key (a writer's bug, not an outsider's edit): refused before
    anything is written."""
    _resign(env, edit(backup).to_bytes())
    _refused(env, backup, message)


def _reseal(env: Env, m: Manifest, chunk: Chunk, plain: bytes) -> None:
    """Chunk `chunk` replaced by `plain`, sealed with the cell's own key in its place."""
    import zstandard

    aead = backup_key(load_keys(env.data_dir, "global").backup_key, m.backup_id)
    nonce = b"\0" * NONCE
    stored = nonce + aead.encrypt(
        nonce, zstandard.ZstdCompressor().compress(plain), aad(m.backup_id, chunk.index)
    )
    (_folder(env, m) / chunk.file).write_bytes(stored)
    chunks = list(m.chunks)
    chunks[chunk.index] = dataclasses.replace(chunk, stored_size=len(stored))
    _resign(env, dataclasses.replace(m, chunks=tuple(chunks)).to_bytes())


def test_a_chunk_holding_other_sizes_than_its_manifest_is_refused(
    env: Env, backup: Manifest
) -> None:
    chunk = backup.chunks[2]
    _reseal(env, backup, chunk, b"x" * (chunk.plain_size - 1))
    _refused(env, backup, rf"^chunk 2 .* holds {chunk.plain_size - 1} bytes, the manifest says")
    _reseal(env, backup, chunk, b"x" * (chunk.plain_size + 1))
    _refused(env, backup, r"^chunk 2 .* holds more bytes than the manifest's")


def test_verify_reads_every_file_back_against_its_sha256(env: Env, backup: Manifest) -> None:
    """What the chunks cannot show: bytes sealed with the cell's own backup key that are not
    the ones its writer hashed (every tag checks out). Verify reads each file back."""
    blob = next(i for i in backup.items if i.name.startswith("blobs/"))
    chunk = backup.chunks[blob.offset // CHUNK]
    _reseal(env, backup, chunk, b"\1" * chunk.plain_size)
    result = verify_backup(env.data_dir, env.deployment.policy, "global", backup.backup_id)
    assert not result.ok
    assert f"{blob.name}: unpacked sha256 " in "\n".join(result.problems), result.problems


def _staging_databases(env: Env) -> list[str]:
    url = env.deployment.policy.cell("global").storage
    with psycopg.connect(libpq_url(url).rsplit("/", 1)[0] + "/postgres") as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '_(restore|verify)_'"
        ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.mark.postgres
def test_postgresql_a_bad_chunk_in_the_dump_stops_pg_restore_and_leaves_nothing(
    make_env: MakeEnv,
) -> None:
    """The dump goes to pg_restore through a pipe as it is unpacked: a chunk refused half-way
    stops pg_restore (its single transaction never commits) and the new database is dropped."""
    env = make_env("postgresql", users=30, blobs=1)
    m = run_backup(env.deployment, "global", chunk_size=CHUNK).manifest
    env.deployment.close()
    dump = next(i for i in m.items if i.name == "database")
    assert dump.size > 3 * CHUNK  # chunks 1 and 2 are inside the dump
    path = _folder(env, m) / m.chunks[2].file
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    _refused(env, m, r"^chunk 2 \(chunks/000002.chunk\) of backup \S+ is corrupt")
    assert _staging_databases(env) == []


@pytest.mark.postgres
def test_postgresql_a_dump_pg_restore_refuses_is_named_and_verify_checks_its_sha256(
    make_env: MakeEnv,
) -> None:
    env = make_env("postgresql", users=30, blobs=1)
    m = run_backup(env.deployment, "global", chunk_size=CHUNK).manifest
    env.deployment.close()
    # Sealed with the cell's own key: every tag checks out, the bytes are not a dump.
    _reseal(env, m, m.chunks[1], b"\0" * m.chunks[1].plain_size)
    _refused(env, m, r"^pg_restore into \S+_(restore|verify)_\S+ failed: ")
    assert _staging_databases(env) == []


@pytest.mark.postgres
def test_postgresql_a_missing_blob_chunk_is_named_not_the_dump_it_stopped(
    make_env: MakeEnv,
) -> None:
    """The chunks outside the dump are unpacked first, while the database is created: one
    refused there stops the dump's threads, and the error names it."""
    env = make_env("postgresql", users=30, blobs=2)
    m = run_backup(env.deployment, "global", chunk_size=CHUNK).manifest
    env.deployment.close()
    last = m.chunks[-1]
    (_folder(env, m) / last.file).unlink()
    _refused(env, m, rf"^chunk {last.index} \({last.file}\) of backup \S+ is missing$")
    assert _staging_databases(env) == []
