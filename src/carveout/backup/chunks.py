"""The chunk stream: files packed in order, cut into chunks, zstd-compressed, AES-GCM-sealed."""

from __future__ import annotations

import contextlib
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
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from carveout.backup.models import CHUNKS, BackupError, Chunk, Item, Manifest

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


def _aad(backup_id: str, index: int) -> bytes:
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
        stored = nonce + self._aead.encrypt(nonce, packed, _aad(self.backup_id, index))
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


# Decompressed this much at a time into a buffer each unpacking thread reuses: the bytes are
# still in the CPU's cache when they are written, and no chunk-sized buffer is allocated (on
# this VM a fresh page costs more than the copy into it).
PIECE = 256 << 10
UNPACKERS = 2  # zstd, AES-GCM and pwrite release the GIL: two chunks at once on two cores


@dataclass(frozen=True)
class _Piece:
    """Part of a chunk's plaintext that belongs to one item: `size` bytes at `at` of its file."""

    path: Path
    at: int
    size: int


def _layout(manifest: Manifest, destination: Callable[[Item], Path]) -> list[list[_Piece]]:
    """Where each chunk's plaintext goes, piece by piece, from the signed manifest alone.

    The chunks must be listed in index order and the items must tile the stream exactly (each
    starting where the previous ended, ending where the last chunk ends): then writing every
    chunk's pieces writes every byte of every item exactly once, whatever the order."""
    where = f"backup {manifest.backup_id}"
    if [c.index for c in manifest.chunks] != list(range(len(manifest.chunks))):
        raise BackupError(f"{where}: its manifest lists its chunks out of order")
    items = sorted(manifest.items, key=lambda i: i.offset)
    end = 0
    for item in items:
        if item.offset != end or item.size < 0:
            raise BackupError(f"{where}: {item.name} does not start where the item before ends")
        end += item.size
    total = sum(c.plain_size for c in manifest.chunks)
    if end < total:
        raise BackupError(f"{where} holds bytes no item accounts for")
    if end > total:
        raise BackupError(f"{where}: its stream ends before its last item")
    paths = [destination(item) for item in items]
    if len(set(paths)) != len(paths):
        raise BackupError(f"{where}: its manifest lists one file twice")
    layout: list[list[_Piece]] = []
    at_item = 0
    start = 0  # the chunk's first byte in the stream
    for chunk in manifest.chunks:
        pieces = []
        pos, stop = start, start + chunk.plain_size
        while pos < stop:
            while items[at_item].offset + items[at_item].size <= pos:  # skips empty items
                at_item += 1
            item = items[at_item]
            size = min(stop, item.offset + item.size) - pos
            pieces.append(_Piece(paths[at_item], pos - item.offset, size))
            pos += size
        layout.append(pieces)
        start = stop
    return layout


def unpack(
    read: Callable[[str], bytes],
    manifest: Manifest,
    cell_key: bytes,
    destination: Callable[[Item], Path],
) -> None:
    """Write every item of the backup to `destination(item)`.

    Each chunk is authenticated before a byte of it is written: its size, then its GCM tag
    under the backup's key with the backup id and the chunk's index as associated data. With
    the signed manifest fixing the chunk list and where every item lies in the stream, a
    chunk missing, truncated, corrupt, from another backup, or moved, swapped or copied to
    another index is refused by name, and the files written are the bytes the backup sealed
    (so no whole-item sha256 is computed here; `backup verify` still reads each file back
    against the manifest's). Chunks are unpacked two at a time, each written straight to its
    place in its files (pwrite), in any order; the first failure in chunk order is raised once
    the other thread has stopped. `read(name)` returns a stored object's bytes (a file of a
    folder site, an object of an S3 site) or raises FileNotFoundError."""
    layout = _layout(manifest, destination)
    # Every file exists (empty items included) before any thread writes at an offset in it.
    for item in manifest.items:
        path = destination(item)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    aead = backup_key(cell_key, manifest.backup_id)
    local = threading.local()  # a zstd context and a buffer per thread

    def one(chunk: Chunk) -> None:
        packed = open_chunk(aead, read, chunk, manifest)
        zstd: zstandard.ZstdDecompressor | None = getattr(local, "zstd", None)
        if zstd is None:
            zstd = local.zstd = zstandard.ZstdDecompressor()
            local.buffer = memoryview(bytearray(PIECE))
        buffer: memoryview = local.buffer
        written = 0
        with zstd.stream_reader(packed) as plain:
            for piece in layout[chunk.index]:
                fd = os.open(piece.path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    done = 0
                    while done < piece.size:
                        got = plain.readinto(buffer[: min(PIECE, piece.size - done)])
                        if not got:
                            raise _short(chunk, manifest, written)
                        _pwrite_all(fd, buffer[:got], piece.at + done)
                        done += got
                        written += got
                finally:
                    os.close(fd)
            if plain.read(1):
                raise BackupError(
                    f"{_where(chunk, manifest)} holds more bytes than the manifest's "
                    f"{chunk.plain_size}"
                )

    with ThreadPoolExecutor(UNPACKERS, thread_name_prefix="backup-unpack") as pool:
        running = [pool.submit(one, chunk) for chunk in manifest.chunks]
        try:
            for future in running:
                future.result()
        except BaseException:
            for future in running:
                future.cancel()  # those not started; the pool's exit waits for the others
            raise


def _pwrite_all(fd: int, data: memoryview, at: int) -> None:
    while data:
        n = os.pwrite(fd, data, at)
        data, at = data[n:], at + n


def _where(chunk: Chunk, manifest: Manifest) -> str:
    return f"chunk {chunk.index} ({chunk.file}) of backup {manifest.backup_id}"


def _short(chunk: Chunk, manifest: Manifest, got: int) -> BackupError:
    return BackupError(
        f"{_where(chunk, manifest)} holds {got} bytes, the manifest says {chunk.plain_size}"
    )


def open_chunk(
    aead: AESGCM, read: Callable[[str], bytes], chunk: Chunk, manifest: Manifest
) -> bytes:
    """The chunk's compressed plaintext, once its size and GCM tag have checked out."""
    where = _where(chunk, manifest)
    try:
        stored = read(chunk.file)
    except FileNotFoundError:
        raise BackupError(f"{where} is missing") from None
    # GCM's tag authenticates every byte (under the cell's key, with the backup id and the
    # chunk's index bound in): a chunk that opens is byte-exact. Its sha256, in the manifest
    # for checks without the key, is computed only to name a chunk that does not.
    if len(stored) == chunk.stored_size:
        with contextlib.suppress(InvalidTag):
            return aead.decrypt(
                stored[:NONCE], stored[NONCE:], _aad(manifest.backup_id, chunk.index)
            )
    sha = hashlib.sha256(stored).hexdigest()
    if len(stored) != chunk.stored_size or sha != chunk.sha256:
        raise BackupError(
            f"{where} is corrupt: sha256 {sha[:16]}… ({len(stored)} bytes) does not "
            f"match the manifest's {chunk.sha256[:16]}… ({chunk.stored_size} bytes)"
        )
    raise BackupError(f"{where} does not decrypt with the cell's backup key {manifest.key_id}")
