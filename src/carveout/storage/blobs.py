"""Blob stores: content-addressed media files (sha256), one store per cell."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from carveout.core import InvalidInput, NotFound

_CHUNK = 1 << 20


def _check_digest(sha256: str) -> str:
    if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
        raise InvalidInput(f"not a sha256 digest: {sha256!r}")
    return sha256


@runtime_checkable
class BlobStore(Protocol):
    """What a cell needs from a blob store; an S3-compatible bucket can implement the same."""

    def put_file(self, path: Path) -> tuple[str, int, bool]:
        """Store a file's content; return (sha256, size, whether it was new)."""
        ...

    def put_stream(self, src: BinaryIO) -> tuple[str, int, bool]:
        """Store what a readable binary stream holds; same result as put_file."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def local_path(self, sha256: str) -> Path:
        """A path the HTTP layer can stream with range support."""
        ...

    def open(self, sha256: str) -> BinaryIO: ...

    def delete(self, sha256: str) -> bool: ...

    def list(self) -> Iterator[str]: ...


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class LocalBlobStore:
    """Files under `root/ab/cd/<sha256>`; writes go to a temp file and are renamed into place,
    so a crash never leaves a partial blob under its final name."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)

    def _path(self, sha256: str) -> Path:
        digest = _check_digest(sha256)
        return self.root / digest[:2] / digest[2:4] / digest

    def put_file(self, path: Path) -> tuple[str, int, bool]:
        with path.open("rb") as src:
            return self.put_stream(src)

    def put_stream(self, src: BinaryIO) -> tuple[str, int, bool]:
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self._path(sha)
            if final.exists():
                tmp.unlink()
                return sha, size, False
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(final)
            return sha, size, True
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.local_path(sha256).stat().st_size

    def local_path(self, sha256: str) -> Path:
        path = self._path(sha256)
        if not path.is_file():
            raise NotFound(f"blob {sha256} is not in this cell's blob store")
        return path

    def open(self, sha256: str) -> BinaryIO:
        return self.local_path(sha256).open("rb")

    def delete(self, sha256: str) -> bool:
        path = self._path(sha256)
        if not path.exists():
            return False
        path.unlink()
        return True

    def list(self) -> Iterator[str]:
        for path in sorted(self.root.glob("??/??/*")):
            if path.is_file():
                yield path.name

    def copy_to(self, sha256: str, other: LocalBlobStore) -> None:
        src = self.local_path(sha256)
        dst = other._path(sha256)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
