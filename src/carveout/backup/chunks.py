"""The chunk stream: files packed in order, cut into chunks, zstd-compressed, AES-GCM-sealed."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from carveout.backup.models import CHUNKS, Chunk, Item

CHUNK_SIZE = 8 << 20
ZSTD_LEVEL = 3  # zstd's own default: the baseline `zstd` uses the same
COMPRESSION = f"zstd level {ZSTD_LEVEL}"
ENCRYPTION = "AES-256-GCM, key derived per backup with HKDF-SHA256"
NONCE = 12


class ChunkWriteError(Exception):
    """Writing a chunk to the site failed (the site is full, read-only, gone)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def backup_key(cell_key: bytes, backup_id: str) -> AESGCM:
    # One key per backup: random 96-bit nonces then never approach their reuse bound.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=backup_id.encode(), info=b"carveout backup v1"
    ).derive(cell_key)
    return AESGCM(derived)


def aad(backup_id: str, index: int) -> bytes:
    # Binds each chunk to its backup and position: a chunk swapped in from elsewhere fails.
    return f"{backup_id}/{index}".encode()


class ChunkWriter:
    """Packs files into one logical stream and writes it as sealed chunk files.

    Chunks are sealed (zstd, AES-GCM, sha256: C code that releases the GIL) by `SEALERS`
    threads, up to `AHEAD` chunks ahead of the one being written and fsynced here, in order:
    the fsyncs wait on the disk while the next chunks are compressed, and a core that the
    table checks have left free compresses too. Call `finish` at the end, `abort` on failure."""

    SEALERS = 2
    AHEAD = 3

    def __init__(
        self,
        folder: Path,
        cell_key: bytes,
        backup_id: str,
        chunk_size: int,
        sink: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """`sink(name, stored)`: where each sealed chunk goes instead of a file in `folder`
        (an S3 site's upload, which then overlaps the write-out)."""
        self.folder = folder / CHUNKS
        self.folder.mkdir()
        self.sink = sink
        self.backup_id = backup_id
        self.chunk_size = chunk_size
        self._aead = backup_key(cell_key, backup_id)
        self._local = threading.local()  # a zstd context per sealing thread
        self._pool = ThreadPoolExecutor(self.SEALERS, thread_name_prefix="backup-seal")
        self._sealing: deque[Future[_Sealed]] = deque()
        self._buffer = bytearray()
        self._offset = 0
        self._sealed = 0
        self.items: list[Item] = []
        self.chunks: list[Chunk] = []
        self.seconds = {"compress": 0.0, "encrypt": 0.0, "checksum": 0.0, "write": 0.0}

    def add_file(self, name: str, path: Path) -> Item:
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as fh:
            # Reads fill the current chunk exactly: a whole chunk goes to _seal without a copy,
            # and few calls means few waits for the GIL while the table checks run beside us.
            while piece := fh.read(self.chunk_size - len(self._buffer)):
                started = time.perf_counter()
                digest.update(piece)
                self.seconds["checksum"] += time.perf_counter() - started
                size += len(piece)
                if not self._buffer and len(piece) == self.chunk_size:
                    self._seal(piece)
                    continue
                self._buffer += piece
                if len(self._buffer) == self.chunk_size:
                    self._seal(bytes(self._buffer))
                    self._buffer.clear()
        item = Item(name=name, offset=self._offset, size=size, sha256=digest.hexdigest())
        self._offset += size
        self.items.append(item)
        return item

    def finish(self) -> None:
        if self._buffer:
            self._seal(bytes(self._buffer))
            self._buffer.clear()
        while self._sealing:
            self._store_oldest()
        self._pool.shutdown()

    def abort(self) -> None:
        """Stop sealing: chunks not started are dropped; the caller removes the folder."""
        for future in self._sealing:
            future.cancel()
        self._sealing.clear()
        self._pool.shutdown(wait=True)

    def _seal(self, plain: bytes) -> None:
        index = self._sealed
        self._sealed += 1
        self._sealing.append(self._pool.submit(self._sealed_chunk, index, plain))
        if len(self._sealing) > self.AHEAD:
            self._store_oldest()

    def _sealed_chunk(self, index: int, plain: bytes) -> _Sealed:
        zstd: zstandard.ZstdCompressor | None = getattr(self._local, "zstd", None)
        if zstd is None:
            zstd = self._local.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        t0 = time.perf_counter()
        packed = zstd.compress(plain)
        t1 = time.perf_counter()
        nonce = secrets.token_bytes(NONCE)
        stored = nonce + self._aead.encrypt(nonce, packed, aad(self.backup_id, index))
        t2 = time.perf_counter()
        sha = hashlib.sha256(stored).hexdigest()
        t3 = time.perf_counter()
        return _Sealed(index, len(plain), stored, sha, (t1 - t0, t2 - t1, t3 - t2))

    def _store_oldest(self) -> None:
        sealed = self._sealing.popleft().result()
        started = time.perf_counter()
        name = f"{sealed.index:06d}.chunk"
        try:
            if self.sink is not None:
                self.sink(f"{CHUNKS}/{name}", sealed.stored)
            else:
                self._write(name, sealed.stored)
        except OSError as exc:
            raise ChunkWriteError(exc) from exc
        for step, spent in zip(("compress", "encrypt", "checksum"), sealed.seconds, strict=True):
            self.seconds[step] += spent
        self.seconds["write"] += time.perf_counter() - started
        self.chunks.append(
            Chunk(sealed.index, f"{CHUNKS}/{name}", len(sealed.stored), sealed.plain, sealed.sha)
        )

    def _write(self, name: str, stored: bytes) -> None:
        with (self.folder / name).open("xb") as fh:
            fh.write(stored)
            fh.flush()
            os.fsync(fh.fileno())


@dataclass(frozen=True)
class _Sealed:
    index: int
    plain: int  # plaintext bytes
    stored: bytes
    sha: str
    seconds: tuple[float, float, float]  # compress, encrypt, checksum
