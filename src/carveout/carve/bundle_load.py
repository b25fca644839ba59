"""The import's load loop: every chunk from where the import stands, rows, blob files and
keys, each committed with the progress record that makes the import resumable."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carveout.carve import keys, state
from carveout.carve.bundle_crypto import BundleError, open_sealed
from carveout.carve.bundle_format import Progress, decode_rows
from carveout.carve.bundle_verify import Verifier
from carveout.carve.sync import insert_rows
from carveout.cells import Cell
from carveout.datamap import DATA_MAP
from carveout.events import Recount


def load(
    cell: Cell,
    bundle: Path,
    manifest: dict[str, Any],
    cipher: AESGCM,
    start: int,
    handed: keys.KeyHandover | None,
    verifier: Verifier,
    progress: Progress,
    recount: Recount | None = None,
) -> tuple[dict[str, int], int]:
    """Every chunk from `start` on, each committed with the progress that records it. The
    blob files are stored by a worker thread from the start (their decryption, hashing, writes
    and fsyncs release the GIL) while the rows load, on PostgreSQL after J's user keys (the
    key store is a file of its own): there the loop mostly waits for the server, and the keys'
    wrapping left at their chunk was on the load's tail; SQLite's loop keeps its core busy
    itself (see _Reader), so there the keys are stored at their chunk. The keys' and each blob
    chunk's progress is recorded in order when the loop reaches it. Keys or a blob stored but
    not yet recorded when an import is interrupted are stored again on resume, which finds them
    there (the key store ignores a key it holds; the blob store is content-addressed)."""
    with ThreadPoolExecutor(1, thread_name_prefix="import-files") as storer:
        stored: dict[int, Future[Any]] = {}
        early = handed if cell.store.backend == "postgresql" else None
        for chunk in manifest["chunks"]:
            if chunk["kind"] == "keys" and chunk["index"] >= start and early is not None:
                accept = cell.vault.keys.accept
                stored[chunk["index"]] = storer.submit(accept, early.records, early.tombstones)
        for chunk in manifest["chunks"]:
            if chunk["kind"] == "blob" and chunk["index"] >= start:
                stored[chunk["index"]] = storer.submit(_store_blob, cell, bundle, cipher, chunk)
        try:
            ahead = 2 if cell.store.backend == "postgresql" else 0
            with _Reader(bundle, manifest, cipher, start, ahead, recount) as reader:
                return _load_in_order(
                    cell, manifest, start, handed, verifier, progress, stored, reader
                )
        finally:
            for future in stored.values():
                future.cancel()


def _store_blob(cell: Cell, bundle: Path, cipher: AESGCM, chunk: dict[str, Any]) -> str:
    """A blob chunk opened and its file stored; its content's sha256."""
    what = f"chunk {chunk['index']:06d}"
    plain = zstandard.ZstdDecompressor().decompress(
        open_sealed(cipher, chunk["index"], (bundle / chunk["file"]).read_bytes(), what)
    )
    sha, _size, _new = cell.blobs.put_stream(BytesIO(plain))
    return sha


def _load_in_order(
    cell: Cell,
    manifest: dict[str, Any],
    start: int,
    handed: keys.KeyHandover | None,
    verifier: Verifier,
    progress: Progress,
    stored: dict[int, Future[Any]],
    reader: _Reader,
) -> tuple[dict[str, int], int]:
    rows: dict[str, int] = {}
    blobs = 0
    for chunk in manifest["chunks"]:
        if chunk["index"] < start:
            continue
        if chunk["kind"] == "blob":
            if stored[chunk["index"]].result() != chunk["sha256_plain"]:
                raise BundleError(f"chunk {chunk['index']:06d}: blob content does not match")
            blobs += 1
            with cell.store.begin() as conn:
                state.put(conn, "import:next_chunk", chunk["index"] + 1)
            progress("blobs", 1)
            verifier.check()
            continue
        if chunk["kind"] == "keys":
            reader.open(chunk)  # parsed before the load began; opened here as before
            assert handed is not None
            if chunk["index"] in stored:
                stored[chunk["index"]].result()  # stored by the worker
            else:
                cell.vault.keys.accept(handed.records, handed.tombstones)
            with cell.store.begin() as conn:
                state.put(conn, "import:next_chunk", chunk["index"] + 1)
            progress("keys", len(handed.records))
            continue
        table = DATA_MAP.table(chunk["table"])
        columns, batch = reader.rows(chunk)
        # The chunk's rows and the progress that records them commit together: an
        # interrupted import resumes at the first chunk not committed, loading nothing twice.
        with cell.store.begin() as conn:
            insert_rows(conn, table, columns, batch)
            state.put(conn, "import:next_chunk", chunk["index"] + 1)
        rows[table.name] = rows.get(table.name, 0) + len(batch)
        progress(table.name, len(batch))
        verifier.loaded(chunk["index"], table.name, len(batch))
    return rows, blobs


class _Reader:
    """Rows chunks opened, decompressed, parsed and checked (columns, every row's domicile in
    J), on PostgreSQL on a worker thread a couple of chunks ahead of the loop: while the loop
    waits for the server's COPY of one chunk, the next is being parsed. Bounded, so at most
    `ahead` chunks' rows are held. SQLite's load has no such wait (its driver inserts in this
    process): there the thread only added CPU (1.32 s against 1.15 s, same wall), so 0."""

    def __init__(
        self,
        bundle: Path,
        manifest: dict[str, Any],
        cipher: AESGCM,
        start: int,
        ahead: int,
        recount: Recount | None,
    ) -> None:
        self.bundle = bundle
        self.recount = recount
        self.cipher = cipher
        self.codes = tuple(manifest["jurisdictions"])
        self.fmt = int(manifest["format"])
        self.todo = deque(
            c for c in manifest["chunks"] if c["kind"] == "rows" and c["index"] >= start
        )
        self.most = ahead
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="import-read")
        self.ahead: dict[int, Future[tuple[list[str], list[Any]]]] = {}
        self._fill()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self) -> None:
        while self.todo and len(self.ahead) < self.most:
            chunk = self.todo.popleft()
            self.ahead[chunk["index"]] = self.pool.submit(self._read, chunk)

    def rows(self, chunk: dict[str, Any]) -> tuple[list[str], list[Any]]:
        """The chunk's column names and rows (the chunks are asked for in order)."""
        if not self.most:
            return self._read(chunk)
        future = self.ahead.pop(chunk["index"])
        self._fill()
        return future.result()

    def open(self, chunk: dict[str, Any]) -> bytes:
        """A chunk's plaintext: its seal opened (AES-GCM checks every byte), decompressed."""
        sealed = (self.bundle / chunk["file"]).read_bytes()
        what = f"chunk {chunk['index']:06d}"
        return zstandard.ZstdDecompressor().decompress(
            open_sealed(self.cipher, chunk["index"], sealed, what)
        )

    def _read(self, chunk: dict[str, Any]) -> tuple[list[str], list[Any]]:
        what = f"chunk {chunk['index']:06d}"
        plain = self.open(chunk)
        table = DATA_MAP.table(chunk["table"])
        columns, batch = decode_rows(plain, self.fmt, table, f"{what} ({table.name})")
        at = columns.index("domicile")
        if any(r[at] not in self.codes for r in batch):
            raise BundleError(f"{what} holds rows outside {self.codes}: refused")
        if self.recount is not None:  # in chunk order: one reader thread, chunks in turn
            self.recount.add(table.name, columns, batch)
        return columns, batch
