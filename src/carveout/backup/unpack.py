"""Unpacking a backup's chunks: each one authenticated, then written straight to its place."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carveout.backup.chunks import NONCE, aad, backup_key
from carveout.backup.models import BackupError, Chunk, Item, Manifest

# Decompressed this much at a time into a buffer each unpacking thread reuses: the bytes are
# still in the CPU's cache when they are written, and no chunk-sized buffer is allocated (on
# this VM a fresh page costs more than the copy into it).
PIECE = 256 << 10
UNPACKERS = 2  # zstd, AES-GCM and pwrite release the GIL: two chunks at once on two cores


class Stream(Protocol):
    """Where one item goes instead of a file, in order (a pipe into pg_restore)."""

    def write(self, data: memoryview) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Piece:
    """Part of a chunk's plaintext that belongs to one item: `size` bytes at `at` of its file
    (`path` None: of the stream, in order)."""

    path: Path | None
    at: int
    size: int


def _layout(manifest: Manifest, paths: dict[Item, Path | None]) -> list[list[_Piece]]:
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
    named = [paths[item] for item in items]
    if len(set(named)) != len(named):
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
            pieces.append(_Piece(named[at_item], pos - item.offset, size))
            pos += size
        layout.append(pieces)
        start = stop
    return layout


class _Stopped(BackupError):
    """A thread gave up waiting for its turn because another chunk failed (raised instead)."""


class _Turns:
    """Hands the streamed item's pieces over in chunk order while the threads unpack chunks
    in any order: a thread waits for its chunk's turn only before its stream piece."""

    def __init__(self, first: int) -> None:
        self._next = first
        self._failed = False
        self._cond = threading.Condition()

    def wait(self, index: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._next == index or self._failed)
            if self._failed:
                raise _Stopped("stopped: another chunk failed")

    def done(self, index: int) -> None:
        with self._cond:
            self._next = index + 1
            self._cond.notify_all()

    def fail(self) -> None:
        with self._cond:
            self._failed = True
            self._cond.notify_all()


def unpack(
    read: Callable[[str], bytes],
    manifest: Manifest,
    cell_key: bytes,
    destination: Callable[[Item], Path],
    stream: tuple[str, Stream] | None = None,
    written: Callable[[Path], None] | None = None,
) -> None:
    """Write every item of the backup to `destination(item)`, or the item named in `stream`
    to that stream (written in order, closed after its last byte, before the rest is done).
    `written(path)`, if given, is called (on an unpacking thread) once a file is complete.

    Each chunk is authenticated before a byte of it is written: its size, then its GCM tag
    under the backup's key with the backup id and the chunk's index as associated data. With
    the signed manifest fixing the chunk list and where every item lies in the stream, a
    chunk missing, truncated, corrupt, from another backup, or moved, swapped or copied to
    another index is refused by name, and the bytes written are the ones the backup sealed
    (so no whole-item sha256 is computed here; `backup verify` checks each item's). Chunks
    are unpacked two at a time, each written straight to its place in its files (pwrite), in
    any order; the first failure in chunk order is raised once the other thread has stopped.
    `read(name)` returns a stored object's bytes (a file of a folder site, an object of an S3
    site) or raises FileNotFoundError."""
    streamed, sink = stream if stream is not None else ("", None)
    paths = {item: None if item.name == streamed else destination(item) for item in manifest.items}
    layout = _layout(manifest, paths)
    # Every file exists (empty items included) before any thread writes at an offset in it.
    for path in paths.values():
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    in_stream = [
        c.index
        for c, pieces in zip(manifest.chunks, layout, strict=True)
        if any(p.path is None for p in pieces)
    ]
    if sink is not None and not in_stream:
        sink.close()  # an empty item
    turns = _Turns(in_stream[0] if in_stream else 0)
    # Pieces still to write per file: the thread writing a file's last one reports it.
    left = dict.fromkeys((p for p in paths.values() if p is not None), 0)
    for piece in (p for pieces in layout for p in pieces if p.path is not None):
        assert piece.path is not None
        left[piece.path] += 1
    lock = threading.Lock()

    def piece_done(path: Path) -> None:
        with lock:
            left[path] -= 1
            complete = not left[path]
        if complete and written is not None:
            written(path)

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
                fd = -1
                if piece.path is None:
                    turns.wait(chunk.index)
                else:
                    fd = os.open(piece.path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    done = 0
                    while done < piece.size:
                        got = plain.readinto(buffer[: min(PIECE, piece.size - done)])
                        if not got:
                            raise _short(chunk, manifest, written)
                        if fd < 0:
                            assert sink is not None
                            sink.write(buffer[:got])
                        else:
                            _pwrite_all(fd, buffer[:got], piece.at + done)
                        done += got
                        written += got
                finally:
                    if fd >= 0:
                        os.close(fd)
                if piece.path is not None:
                    piece_done(piece.path)
                if piece.path is None:
                    if chunk.index == in_stream[-1]:
                        assert sink is not None
                        sink.close()
                    turns.done(chunk.index)
            if plain.read(1):
                raise BackupError(
                    f"{_where(chunk, manifest)} holds more bytes than the manifest's "
                    f"{chunk.plain_size}"
                )

    def guarded(chunk: Chunk) -> None:
        try:
            one(chunk)
        except BaseException:
            turns.fail()  # a thread waiting for this chunk's turn stops too
            raise

    with ThreadPoolExecutor(UNPACKERS, thread_name_prefix="backup-unpack") as pool:
        # The chunks outside the stream first: their files are written while the stream's
        # reader gets ready (pg_restore waits for its database to be created).
        streaming = set(in_stream)
        order = sorted(manifest.chunks, key=lambda c: c.index in streaming)
        submitted = {chunk.index: pool.submit(guarded, chunk) for chunk in order}
        running = [submitted[chunk.index] for chunk in manifest.chunks]
        try:
            for future in running:  # in chunk order: the first failure in that order is raised
                with contextlib.suppress(_Stopped):
                    future.result()
        except BaseException:
            turns.fail()
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
                stored[:NONCE], stored[NONCE:], aad(manifest.backup_id, chunk.index)
            )
    sha = hashlib.sha256(stored).hexdigest()
    if len(stored) != chunk.stored_size or sha != chunk.sha256:
        raise BackupError(
            f"{where} is corrupt: sha256 {sha[:16]}… ({len(stored)} bytes) does not "
            f"match the manifest's {chunk.sha256[:16]}… ({chunk.stored_size} bytes)"
        )
    raise BackupError(f"{where} does not decrypt with the cell's backup key {manifest.key_id}")
