"""The transfer bundle ("ship the hard drive"): J's rows and blobs written to a folder, chunked,
sealed to the receiving organisation's key, with per-chunk sha256 and a root digest; imported on
the other side into a new cell, every chunk checked before anything loads, resumable."""

from __future__ import annotations

import hashlib
import json
import operator
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carveout.carve import keys, state
from carveout.carve.bundle_crypto import (
    MANIFEST_SEAL,
    BundleError,
    check_key,
    check_manifest,
    key_check,
    load_private,
    load_public,
    open_sealed,
    recipient_cipher,
    seal,
    seal_manifest,
    sender_cipher,
)
from carveout.carve.capture import carved_tables
from carveout.carve.sync import insert_rows
from carveout.carve.verify import LeakReport, leak_scan
from carveout.cells import (
    POLICY_FILE,
    Cell,
    CellSpec,
    Deployment,
    open_cell,
    with_new_cell,
    write_policy_atomically,
)
from carveout.core import Conflict, new_id, now_ms, parse_jurisdictions
from carveout.datamap import DATA_MAP, TABLES, Table
from carveout.events import recompute_all
from carveout.storage import Store, schema_head, table_digest

# Format 2: a rows chunk is one JSON object of columns and row arrays (encode_rows), and the
# manifest is sealed (bundle_crypto.seal_manifest). Format 1: JSON lines, one object per row, an
# unsealed manifest; still imported (its chunks cannot be read as format 2's, so a format 2
# bundle relabelled 1 to drop the seal fails to load).
FORMAT = 2
READABLE = (1, 2)
ROWS_PER_CHUNK = 5000
MANIFEST = "manifest.json"
_JSON = json.JSONEncoder(ensure_ascii=False)  # one encoder: json.dumps(**kw) builds one per call

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class ImportReport:
    target: str
    chunks: int
    resumed_from: int
    rows: dict[str, int]
    blobs: int
    leaks: LeakReport


def _digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _snapshot(store: Store) -> Iterator[sa.Connection]:
    """One read transaction over every table, so the bundle is a consistent cut."""
    with store.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = conn.execution_options(isolation_level="AUTOCOMMIT")
            raw.exec_driver_sql("BEGIN")  # a WAL read snapshot until COMMIT
            try:
                yield raw
            finally:
                raw.exec_driver_sql("COMMIT")
        else:
            with conn.execution_options(isolation_level="REPEATABLE READ").begin():
                yield conn


def export_bundle(
    deployment: Deployment,
    jurisdictions: str,
    bundle: Path,
    recipient_key: Path,
    progress: Progress = lambda _w, _n: None,
) -> dict[str, Any]:
    codes = parse_jurisdictions(jurisdictions)
    sources = {deployment.policy.cell_for(c).name for c in codes}
    if len(sources) != 1:
        raise BundleError(f"{', '.join(codes)} are served by several cells: {sorted(sources)}")
    source = deployment.cell(sources.pop())
    public = load_public(recipient_key)
    if bundle.exists() and any(bundle.iterdir()):
        raise Conflict(f"bundle folder {bundle} is not empty")
    bundle_id = new_id()
    cipher, ephemeral = sender_cipher(public, bundle_id)
    tables: dict[str, list[Any]] = {}
    shas: set[str] = set()
    with _ChunkWriter(bundle, cipher) as out:
        with _snapshot(source.store) as conn:
            for table in carved_tables():
                tbl = TABLES[table.name]
                stmt = (
                    sa.select(tbl)
                    .where(tbl.c.domicile.in_(codes))
                    .order_by(tbl.c[table.primary_key])
                )
                names, rows = _fetch(conn, stmt, tbl)
                # The recipient's verify compares its table_digest with this one, computed
                # from the values written here (JSON gives back exactly these ints, floats,
                # strings, bools and None), without reading the sealed chunks back.
                digest = hashlib.sha256()
                sha256 = hashlib.sha256
                for i in range(0, len(rows), ROWS_PER_CHUNK):
                    part = rows[i : i + ROWS_PER_CHUNK]
                    out.write("rows", encode_rows(names, part), table=table.name, rows=len(part))
                    digest.update(b"".join([sha256(repr(r).encode()).digest() for r in part]))
                    progress(table.name, len(part))
                tables[table.name] = [len(rows), digest.hexdigest()]
                for col in table.blob_columns:
                    at = names.index(col.name)
                    shas |= {r[at] for r in rows}
        for sha in sorted(shas):
            with source.blobs.open(sha) as fh:
                out.write("blob", fh.read(), sha256_plain=sha)
            progress("blobs", 1)
        # J's user keys travel too (sealed to the recipient like everything else): without
        # them the users' sealed fields could not be read on the other side.
        out.write("keys", keys.export_keys(deployment.data_dir, source, codes))
    chunks = out.chunks
    root = hashlib.sha256("".join(c["sha256"] for c in chunks).encode()).hexdigest()
    manifest = {
        "format": FORMAT,
        "bundle_id": bundle_id,
        "created_at": now_ms(),
        "source_cell": source.name,
        "jurisdictions": list(codes),
        "schema_version": schema_head(),
        "ephemeral_public_key": ephemeral.hex(),
        "key_check": key_check(cipher).hex(),
        "chunks": chunks,
        "tables": tables,
        "root_digest": root,
    }
    manifest[MANIFEST_SEAL] = seal_manifest(cipher, manifest)
    tmp = bundle / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(bundle / MANIFEST)
    return manifest


class _ChunkWriter:
    """Compresses, seals, writes and checksums chunks on a worker thread (zstd, AES-GCM,
    sha256 and the file write release the GIL) while the caller reads and encodes the next
    rows; a few chunks ahead at most. The chunk list is in index order as it is submitted;
    leaving the block waits for every write and raises the first error."""

    AHEAD = 4

    def __init__(self, bundle: Path, cipher: AESGCM) -> None:
        self.folder = bundle / "chunks"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cipher = cipher
        self.zstd = zstandard.ZstdCompressor(level=3)  # used by the one worker thread only
        self.chunks: list[dict[str, Any]] = []
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="bundle-seal")
        self.pending: deque[Future[None]] = deque()

    def __enter__(self) -> _ChunkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def write(self, kind: str, plain: bytes, **meta: Any) -> None:
        index = len(self.chunks) + 1
        name = f"{index:06d}.bin"
        chunk = {"index": index, "file": f"chunks/{name}", "kind": kind, "sha256": "", "bytes": 0}
        chunk.update(meta)
        self.chunks.append(chunk)
        self.pending.append(self.pool.submit(self._seal, chunk, plain))
        while len(self.pending) > self.AHEAD:
            self.pending.popleft().result()

    def _seal(self, chunk: dict[str, Any], plain: bytes) -> None:
        sealed = seal(self.cipher, chunk["index"], self.zstd.compress(plain))
        (self.folder / Path(chunk["file"]).name).write_bytes(sealed)
        chunk["sha256"] = _digest_hex(sealed)
        chunk["bytes"] = len(sealed)


def _fetch(
    conn: sa.Connection, stmt: sa.Select[Any], tbl: sa.Table
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """All rows of `stmt` (a select of every column of `tbl`) straight from the driver's
    cursor, as tuples of the values SQLAlchemy would return (its result processors, e.g.
    SQLite's 0/1 to bool, applied): Row objects cost more than the rest of the export."""
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    cursor = conn.connection.cursor()
    try:
        if compiled.positional:
            assert compiled.positiontup is not None
            cursor.execute(compiled.string, tuple(params[n] for n in compiled.positiontup))
        else:
            cursor.execute(compiled.string, params)
        rows: list[tuple[Any, ...]] = list(cursor.fetchall())
        processors = [
            col.type.dialect_impl(dialect).result_processor(dialect, desc[1])
            for col, desc in zip(tbl.c, cursor.description, strict=True)
        ]
    finally:
        cursor.close()
    names = [col.name for col in tbl.c]
    if any(processors):
        rows = [
            tuple(v if p is None or v is None else p(v) for p, v in zip(processors, r, strict=True))
            for r in rows
        ]
    return names, rows


def encode_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A rows chunk's plaintext (format 2): one JSON object, the column names once and every
    row as an array of its values in that order, `{"columns": [...], "rows": [[...], ...]}`.
    (Format 1 wrote one JSON object per line, the names repeated in every row: a third more
    bytes to compress, seal and hash, and a dict per row to build and parse.)"""
    return _JSON.encode({"columns": list(columns), "rows": rows}).encode()


def decode_rows(plain: bytes, fmt: int, table: Table, what: str) -> tuple[list[str], list[Any]]:
    """A rows chunk's column names and rows (each a list of values in the names' order), of
    either format; a chunk whose columns are not the table's is refused by name."""
    try:
        if fmt == 1:
            # One object per line; JSON escapes every newline inside a string, so the lines
            # joined by commas are one array (one parse instead of one per row).
            objects = json.loads(b"[" + plain.replace(b"\n", b",") + b"]")
            columns = list(objects[0]) if objects else list(TABLES[table.name].c.keys())
            get = operator.itemgetter(*columns)
            rows: list[Any] = [get(o) for o in objects]
            if len(columns) == 1:
                rows = [(r,) for r in rows]
            if any(len(o) != len(columns) for o in objects):
                raise BundleError(f"{what}: its rows do not all have the same columns")
        else:
            body = json.loads(plain)
            columns, rows = body["columns"], body["rows"]
            if any(len(r) != len(columns) for r in rows):
                raise BundleError(f"{what}: a row does not have one value per column")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BundleError(f"{what}: rows that cannot be read ({exc})") from exc
    expected = set(TABLES[table.name].c.keys())
    if set(columns) != expected or len(columns) != len(expected):
        raise BundleError(
            f"{what}: its columns {sorted(columns)} are not {table.name}'s {sorted(expected)}"
        )
    return columns, rows


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(
            f"{path} is missing: not a transfer bundle, or an unfinished one"
        ) from exc
    except ValueError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") not in READABLE:
        raise BundleError(
            f"{path}: unknown bundle format {manifest.get('format')!r} (this carveout reads "
            f"formats {', '.join(map(str, READABLE))}): a newer carveout wrote it"
        )
    root = hashlib.sha256("".join(c["sha256"] for c in manifest["chunks"]).encode()).hexdigest()
    if root != manifest["root_digest"]:
        raise BundleError(f"{path}: the chunk list does not match its root digest")
    return manifest


def check_chunks(bundle: Path, manifest: dict[str, Any]) -> None:
    """Every chunk present and byte-exact, before a single row is loaded."""
    for chunk in manifest["chunks"]:
        path = bundle / chunk["file"]
        what = f"chunk {chunk['index']:06d} ({chunk.get('table') or 'blob'})"
        if not path.is_file():
            raise BundleError(f"{what} is missing: {path}")
        if _digest_hex(path.read_bytes()) != chunk["sha256"]:
            raise BundleError(f"{what} is corrupt: its sha256 does not match the manifest")


def import_bundle(
    deployment: Deployment,
    bundle: Path,
    key: Path,
    target: str,
    *,
    storage: str = "sqlite",
    primary_site: str | None = None,
    backup_site: str | None = None,
    progress: Progress = lambda _w, _n: None,
) -> ImportReport:
    manifest = read_manifest(bundle)
    if manifest["schema_version"] != schema_head():
        raise BundleError(
            f"the bundle has schema {manifest['schema_version']}, this carveout {schema_head()}"
        )
    cipher = recipient_cipher(
        load_private(key), bytes.fromhex(manifest["ephemeral_public_key"]), manifest["bundle_id"]
    )
    check_key(cipher, bytes.fromhex(manifest["key_check"]))
    if manifest["format"] >= 2:
        check_manifest(cipher, manifest, str(bundle / MANIFEST))
    check_chunks(bundle, manifest)
    codes = tuple(manifest["jurisdictions"])
    default = deployment.policy.cells[0]
    spec = CellSpec(
        name=target,
        jurisdictions=codes,
        serves_rest=False,
        primary_site=primary_site or default.primary_site,
        backup_site=backup_site if backup_site is not None else default.backup_site,
        content_exchange=False,
        storage=storage,
    )
    key_chunks = [c for c in manifest["chunks"] if c["kind"] == "keys"]
    handed: keys.KeyHandover | None = None
    if key_chunks:
        chunk = key_chunks[0]
        sealed = (bundle / chunk["file"]).read_bytes()
        plain_keys = open_sealed(cipher, chunk["index"], sealed, f"chunk {chunk['index']:06d}")
        handed = keys.parse_keys(zstandard.ZstdDecompressor().decompress(plain_keys), codes)
        keys.adopt_lookup_bytes(deployment.data_dir, target, handed.lookup_key)
    cell = _open_import_target(deployment, spec, manifest["bundle_id"])
    with cell.store.connect() as conn:
        start = int(state.get(conn, "import:next_chunk", 1))
    if any(c["kind"] == "rows" and c["index"] >= start for c in manifest["chunks"]):
        # A new cell: its secondary indexes are built once after the load, not row by row
        # (as the carve's replication copy does). A resumed import drops what was built.
        _drop_indexes(cell)
    with _Verifier(cell, manifest, start) as verifier:
        rows, blobs = _load(cell, bundle, manifest, cipher, start, handed, verifier, progress)
        verifier.finish()
    _verify_blobs(cell, manifest)
    recompute_all(cell.store, now_ms())
    leaks = leak_scan(cell, codes)
    if leaks.leaks:
        raise BundleError(f"leak scan of the imported cell found {leaks.leaks} foreign items")
    deployment.refresh_policy()
    if target not in deployment.policy.names:
        write_policy_atomically(
            deployment.data_dir / POLICY_FILE, with_new_cell(deployment.policy, spec)
        )
        deployment.refresh_policy()
    return ImportReport(target, len(manifest["chunks"]), start, rows, blobs, leaks)


def _load(
    cell: Cell,
    bundle: Path,
    manifest: dict[str, Any],
    cipher: AESGCM,
    start: int,
    handed: keys.KeyHandover | None,
    verifier: _Verifier,
    progress: Progress,
) -> tuple[dict[str, int], int]:
    """Every chunk from `start` on, each committed with the progress that records it. The
    blob files are stored by a worker thread from the start (their decryption, hashing, writes
    and fsyncs release the GIL) while the rows load; each blob chunk's progress is recorded in
    order when the loop reaches it. A blob stored but not yet recorded when an import is
    interrupted is stored again on resume, which finds it there (content-addressed)."""
    with ThreadPoolExecutor(1, thread_name_prefix="import-blobs") as storer:
        stored = {
            chunk["index"]: storer.submit(_store_blob, cell, bundle, cipher, chunk)
            for chunk in manifest["chunks"]
            if chunk["kind"] == "blob" and chunk["index"] >= start
        }
        try:
            return _load_in_order(
                cell, bundle, manifest, cipher, start, handed, verifier, progress, stored
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
    bundle: Path,
    manifest: dict[str, Any],
    cipher: AESGCM,
    start: int,
    handed: keys.KeyHandover | None,
    verifier: _Verifier,
    progress: Progress,
    stored: dict[int, Future[str]],
) -> tuple[dict[str, int], int]:
    codes = tuple(manifest["jurisdictions"])
    fmt = int(manifest["format"])
    dctx = zstandard.ZstdDecompressor()
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
        what = f"chunk {chunk['index']:06d}"
        plain = dctx.decompress(
            open_sealed(cipher, chunk["index"], (bundle / chunk["file"]).read_bytes(), what)
        )
        if chunk["kind"] == "keys":
            assert handed is not None
            cell.vault.keys.accept(handed.records, handed.tombstones)
            with cell.store.begin() as conn:
                state.put(conn, "import:next_chunk", chunk["index"] + 1)
            progress("keys", len(handed.records))
            continue
        table = DATA_MAP.table(chunk["table"])
        columns, batch = decode_rows(plain, fmt, table, f"{what} ({table.name})")
        at = columns.index("domicile")
        if any(r[at] not in codes for r in batch):
            raise BundleError(f"{what} holds rows outside {codes}: refused")
        # The chunk's rows and the progress that records them commit together: an
        # interrupted import resumes at the first chunk not committed, loading nothing twice.
        with cell.store.begin() as conn:
            insert_rows(conn, table, columns, batch)
            state.put(conn, "import:next_chunk", chunk["index"] + 1)
        rows[table.name] = rows.get(table.name, 0) + len(batch)
        progress(table.name, len(batch))
        verifier.loaded(chunk["index"], table.name)
    return rows, blobs


class _Verifier:
    """The carve's check of every table against the bundle's digest, each table on a worker
    thread as soon as its last chunk has committed (no later chunk writes to it), while the
    next tables load; and the secondary indexes built on another as soon as the last rows
    chunk has committed, while the blob files and keys load. A mismatch found meanwhile stops
    the load at its next chunk."""

    def __init__(self, cell: Cell, manifest: dict[str, Any], start: int) -> None:
        self.cell = cell
        self.tables: dict[str, list[Any]] = manifest["tables"]
        self.last: dict[str, int] = {
            c["table"]: c["index"] for c in manifest["chunks"] if c["kind"] == "rows"
        }
        self.last_rows = max(self.last.values(), default=0)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="import-verify")
        self.builder = ThreadPoolExecutor(1, thread_name_prefix="import-indexes")
        self.futures: list[Future[None]] = []
        # Tables with nothing left to load (empty, or loaded before an interruption): now.
        for name in self.tables:
            if self.last.get(name, 0) < start:
                self._submit(name)
        if self.last_rows < start:
            self.futures.append(self.builder.submit(_build_indexes, cell))

    def __enter__(self) -> _Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.builder.shutdown(wait=True, cancel_futures=True)

    def _submit(self, name: str) -> None:
        count, digest = self.tables[name]
        self.futures.append(self.pool.submit(_verify_table, self.cell, name, count, digest))

    def loaded(self, index: int, table: str) -> None:
        if self.last.get(table) == index and table in self.tables:
            self._submit(table)
        if index == self.last_rows:
            self.futures.append(self.builder.submit(_build_indexes, self.cell))
        self.check()

    def check(self) -> None:
        for future in self.futures:
            if future.done():
                future.result()  # raises a mismatch now

    def finish(self) -> None:
        for future in self.futures:
            future.result()


def _open_import_target(deployment: Deployment, spec: CellSpec, bundle_id: str) -> Cell:
    existing = spec.name in deployment.policy.names
    cell = open_cell(deployment.data_dir, spec)
    with cell.store.begin() as conn:
        seen = state.get(conn, "import:bundle")
        if seen is None and (existing or _has_rows(conn)):
            raise Conflict(f"cell {spec.name!r} exists and holds data: import into a new cell")
        if seen is not None and seen != bundle_id:
            raise Conflict(f"cell {spec.name!r} was imported from another bundle ({seen})")
        state.put(conn, "import:bundle", bundle_id)
    return cell


def _secondary_indexes() -> list[sa.Index]:
    """The carved tables' non-unique indexes, as the schema declares them (unique ones are
    constraints the load must meet, so they stay)."""
    return [
        index
        for table in carved_tables()
        for index in sorted(TABLES[table.name].indexes, key=lambda i: str(i.name))
        if not index.unique
    ]


def _drop_indexes(cell: Cell) -> None:
    with cell.store.begin() as conn:
        for index in _secondary_indexes():
            conn.execute(sa.schema.DropIndex(index, if_exists=True))


def _build_indexes(cell: Cell) -> None:
    """The indexes dropped before the load, built again (those already there are left alone,
    so a resumed import builds only what is missing), one transaction each: on SQLite the blob
    chunks' progress records commit in between (one writer at a time)."""
    for index in _secondary_indexes():
        with cell.store.begin() as conn:
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _has_rows(conn: sa.Connection) -> bool:
    users = TABLES["users"]
    return conn.execute(sa.select(users.c.id).limit(1)).first() is not None


def _verify_table(cell: Cell, name: str, count: int, digest: str) -> None:
    got = table_digest(cell.store, name)
    if got != (count, digest):
        raise BundleError(
            f"after import, table {name} has {got[0]} rows that do not match the bundle's "
            f"{count}: the import is incomplete or the target was written meanwhile"
        )


def _verify_blobs(cell: Cell, manifest: dict[str, Any]) -> None:
    have = set(cell.blobs.list())
    missing = [
        c["sha256_plain"]
        for c in manifest["chunks"]
        if c["kind"] == "blob" and c["sha256_plain"] not in have
    ]
    if missing:
        raise BundleError(f"{len(missing)} blob files of the bundle are missing after import")
