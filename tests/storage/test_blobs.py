"""LocalBlobStore: content-addressed files, deduplicated, never left half-written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from carveout.core import InvalidInput, NotFound
from carveout.storage import BlobStore, LocalBlobStore, sha256_file


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def tmp_leftovers(blobs: LocalBlobStore) -> list[Path]:
    return list((blobs.root / ".tmp").iterdir())


def test_is_a_blob_store(blobs: LocalBlobStore) -> None:
    assert isinstance(blobs, BlobStore)


def test_put_file_returns_sha256_and_size(blobs: LocalBlobStore, tmp_path: Path) -> None:
    data = b"\x00\x01 not really a video " * 100_000  # > one read chunk
    src = write(tmp_path / "clip.mp4", data)
    sha, size, new = blobs.put_file(src)
    assert sha == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    assert new is True
    assert sha256_file(src) == (sha, size)
    assert blobs.exists(sha)
    assert blobs.size(sha) == len(data)
    assert blobs.local_path(sha) == blobs.root / sha[:2] / sha[2:4] / sha
    with blobs.open(sha) as fh:
        assert fh.read() == data
    assert src.read_bytes() == data  # the source is copied, not moved
    assert tmp_leftovers(blobs) == []


def test_put_file_deduplicates(blobs: LocalBlobStore, tmp_path: Path) -> None:
    first = blobs.put_file(write(tmp_path / "a.mp4", b"same bytes"))
    second = blobs.put_file(write(tmp_path / "b.mp4", b"same bytes"))
    assert first[2] is True
    assert second == (first[0], first[1], False)
    assert list(blobs.list()) == [first[0]]
    assert tmp_leftovers(blobs) == []


def test_empty_file(blobs: LocalBlobStore, tmp_path: Path) -> None:
    sha, size, new = blobs.put_file(write(tmp_path / "empty", b""))
    assert (sha, size, new) == (hashlib.sha256(b"").hexdigest(), 0, True)
    assert blobs.exists(sha)


def test_list_exists_delete(blobs: LocalBlobStore, tmp_path: Path) -> None:
    assert list(blobs.list()) == []
    shas = [blobs.put_file(write(tmp_path / f"{i}.bin", bytes([i]) * 10))[0] for i in range(5)]
    assert list(blobs.list()) == sorted(shas)
    victim = shas[2]
    assert blobs.delete(victim) is True
    assert not blobs.exists(victim)
    assert blobs.delete(victim) is False
    assert list(blobs.list()) == sorted(s for s in shas if s != victim)
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not blobs.exists(missing)
    assert blobs.delete(missing) is False


def test_list_ignores_temp_files(blobs: LocalBlobStore) -> None:
    (blobs.root / ".tmp" / "partial").write_bytes(b"half a video")
    assert list(blobs.list()) == []


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "abc",
        "g" * 64,
        "A" * 64,  # upper case is not the canonical form
        "a" * 63,
        "a" * 65,
        "../" + "a" * 61,
        "aa/bb/" + "a" * 58,
    ],
)
def test_a_bad_digest_is_invalid_input(blobs: LocalBlobStore, digest: str) -> None:
    for call in (blobs.exists, blobs.local_path, blobs.delete, blobs.size, blobs.open):
        with pytest.raises(InvalidInput):
            call(digest)


def test_missing_blob_is_not_found(blobs: LocalBlobStore) -> None:
    missing = hashlib.sha256(b"nothing").hexdigest()
    with pytest.raises(NotFound):
        blobs.local_path(missing)
    with pytest.raises(NotFound):
        blobs.open(missing)
    with pytest.raises(NotFound):
        blobs.size(missing)


def test_failed_put_leaves_no_temp_file(blobs: LocalBlobStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        blobs.put_file(tmp_path / "does-not-exist.mp4")
    assert tmp_leftovers(blobs) == []
    assert list(blobs.list()) == []


def test_copy_to_another_store(blobs: LocalBlobStore, tmp_path: Path) -> None:
    other = LocalBlobStore(tmp_path / "other")
    sha, _, _ = blobs.put_file(write(tmp_path / "v.mp4", b"video"))
    blobs.copy_to(sha, other)
    blobs.copy_to(sha, other)  # idempotent
    assert list(other.list()) == [sha]
    assert other.local_path(sha).read_bytes() == b"video"
    with pytest.raises(NotFound):
        blobs.copy_to(hashlib.sha256(b"x").hexdigest(), other)
