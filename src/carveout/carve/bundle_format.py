"""The transfer bundle's format: the manifest, the rows chunks' plaintext and the tables'
digests (format 3, still reading formats 1 and 2), and the checks of a bundle on disk before
anything loads."""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from carveout.carve.bundle_crypto import BundleError
from carveout.datamap import TABLES, Table

# Format 3: a table's digest is over its rows' JSON (ROWS_JSON), the bytes the chunks carry.
# Format 2: a rows chunk is one JSON object of columns and row arrays (encode_rows), the
# manifest is sealed (bundle_crypto.seal_manifest), a table's digest is ROW_REPR. Format 1:
# JSON lines, one object per row, an unsealed manifest; still imported (its chunks cannot be
# read as format 2's, so a format 2 bundle relabelled 1 to drop the seal fails to load).
FORMAT = 3
READABLE = (1, 2, 3)
# Rows per rows chunk. Each chunk is a transaction of the import, with its progress record and
# its read-back: 20,000 rather than 5,000 made an import of 77,101 rows into PostgreSQL 0.65 s
# against 0.73 s (medians of 5), for a few MB of plaintext held per chunk and a resume that
# redoes at most one chunk.
ROWS_PER_CHUNK = 20_000
MANIFEST = "manifest.json"
# The manifest's `table_digest` names how its tables' digests were made (format 3 on).
ROW_REPR = "row-repr-sha256"  # formats 1 and 2: storage.table_digest's definition
ROWS_JSON = "rows-json-sha256"  # format 3: see TableHash

Progress = Callable[[str, int], None]


def digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A rows chunk's plaintext (formats 2 and 3): one JSON object, the column names once and
    every row as an array of its values in that order, `{"columns": [...], "rows": [[...],
    ...]}`, compact, as orjson writes it. (Format 1 wrote one JSON object per line, the names
    repeated in every row: a third more bytes to compress, seal and hash, and a dict per row
    to build and parse.)"""
    return chunk_plain(orjson.dumps(list(columns)), orjson.dumps(rows))


def chunk_plain(columns_json: bytes, rows_json: bytes) -> bytes:
    """`encode_rows`'s bytes from the names' and the rows' JSON arrays (the rows' JSON is
    also what the table's digest hashes: one serialisation for both)."""
    return b'{"columns":' + columns_json + b',"rows":' + rows_json + b"}"


def rows_json(tbl: sa.Table, rows: Sequence[Sequence[Any]]) -> bytes:
    """The JSON array of `rows` (each a sequence of `tbl`'s columns' values in table order).
    orjson would write a NaN or an infinity as null and cannot write an integer beyond 64
    bits: such a value is refused, naming the table and column, rather than changed."""
    for at, col in enumerate(tbl.c):
        if isinstance(col.type, sa.Float) and not _finite([r[at] for r in rows]):
            raise BundleError(
                f"table {tbl.name}, column {col.name}: a NaN or infinite value, which the "
                "bundle's JSON cannot carry: refused rather than written as null"
            )
    try:
        return orjson.dumps(rows)
    except orjson.JSONEncodeError as exc:
        for at, col in enumerate(tbl.c):  # which column: only once something failed
            try:
                orjson.dumps([r[at] for r in rows])
            except orjson.JSONEncodeError:
                raise BundleError(
                    f"table {tbl.name}, column {col.name}: a value the bundle's JSON cannot "
                    f"carry ({exc})"
                ) from exc
        raise BundleError(f"table {tbl.name}: rows the bundle's JSON cannot carry ({exc})") from exc


def _finite(values: list[Any]) -> bool:
    try:  # in C: filter(None) drops the NULLs (and zeros, which are finite)
        return all(map(math.isfinite, filter(None, values)))
    except TypeError:  # a text in a float column (SQLite does not refuse one): check floats
        return all(math.isfinite(v) for v in values if isinstance(v, float))


class TableHash:
    """A table's digest, fed its rows in primary-key order a part at a time.

    ROWS_JSON (format 3): sha256 of the rows' JSON (each row an array of its values in table
    order, as orjson writes it compactly) joined by commas, that is of a JSON array of every
    row without its brackets: the same whatever the chunk size, and made from the bytes the
    chunks carry (`update_json` with a part's `rows_json`). ROW_REPR (formats 1 and 2): the
    sha256 of each row's Python repr, concatenated, then hashed (`row_digests`)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sha = hashlib.sha256()
        self.empty = True

    def update(self, rows: list[tuple[Any, ...]]) -> None:
        """The next rows, as the database returns them (tuples of Python values)."""
        if self.kind == ROW_REPR:
            self.sha.update(row_digests(rows))
        else:
            self.update_json(orjson.dumps(rows))

    def update_json(self, array: bytes) -> None:
        """The next rows as one JSON array (`rows_json`)."""
        if len(array) <= 2:  # no rows: []
            return
        if not self.empty:
            self.sha.update(b",")
        self.sha.update(memoryview(array)[1:-1])
        self.empty = False

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def digest_kind(manifest: dict[str, Any]) -> str:
    """How the manifest's table digests were made: named since format 3, ROW_REPR before."""
    if manifest["format"] < 3:
        return ROW_REPR
    return str(manifest.get("table_digest"))


def decode_rows(plain: bytes, fmt: int, table: Table, what: str) -> tuple[list[str], list[Any]]:
    """A rows chunk's column names and rows (each a list of values in the names' order), of
    either format; a chunk whose columns are not the table's is refused by name."""
    try:
        if fmt == 1:
            # One object per line; JSON escapes every newline inside a string, so the lines
            # joined by commas are one array (one parse instead of one per row).
            objects = _loads(b"[" + plain.replace(b"\n", b",") + b"]", fmt)
            columns = list(objects[0]) if objects else list(TABLES[table.name].c.keys())
            get = operator.itemgetter(*columns)
            rows: list[Any] = [get(o) for o in objects]
            if len(columns) == 1:
                rows = [(r,) for r in rows]
            if any(len(o) != len(columns) for o in objects):
                raise BundleError(f"{what}: its rows do not all have the same columns")
        else:
            body = _loads(plain, fmt)
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


def _loads(plain: bytes, fmt: int) -> Any:
    try:
        return orjson.loads(plain)
    except orjson.JSONDecodeError:
        if fmt >= 3:
            raise
        # Formats 1 and 2 were written by the standard library's json, which writes what
        # orjson refuses to read (NaN, integers beyond 64 bits): read them as it does.
        return json.loads(plain)


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
    if digest_kind(manifest) not in (ROW_REPR, ROWS_JSON):
        raise BundleError(
            f"{path}: unknown table digest {manifest.get('table_digest')!r} (this carveout "
            f"knows {ROWS_JSON} and {ROW_REPR}): a newer carveout wrote it"
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
        if digest_hex(path.read_bytes()) != chunk["sha256"]:
            raise BundleError(f"{what} is corrupt: its sha256 does not match the manifest")


def fetch_rows(
    conn: sa.Connection, stmt: sa.Select[Any], tbl: sa.Table
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """All rows of `stmt` (a select of every column of `tbl`) straight from the driver's
    cursor, as tuples of the values SQLAlchemy would return (its result processors, e.g.
    SQLite's 0/1 to bool, applied): Row objects cost more than the rest of an export or a
    verify."""
    sql, params = compile_select(conn, stmt)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = list(cursor.fetchall())
        processors = result_processors(conn.dialect, tbl, cursor.description)
    finally:
        cursor.close()
    return [col.name for col in tbl.c], processed(processors, rows)


Processors = list[Callable[[Any], Any] | None]


def compile_select(conn: sa.Connection, stmt: sa.Select[Any]) -> tuple[str, Any]:
    """The driver's SQL text and parameters for `stmt`."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positional:
        assert compiled.positiontup is not None
        return compiled.string, tuple(params[n] for n in compiled.positiontup)
    return compiled.string, params


def result_processors(dialect: sa.Dialect, tbl: sa.Table, description: Any) -> Processors:
    return [
        col.type.dialect_impl(dialect).result_processor(dialect, desc[1])
        for col, desc in zip(tbl.c, description, strict=True)
    ]


def processed(processors: Processors, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if not any(processors):
        return rows
    return [
        tuple(v if p is None or v is None else p(v) for p, v in zip(processors, r, strict=True))
        for r in rows
    ]


def row_digests(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """The sha256 of each row's repr, concatenated: what a table's digest (`table_digest`,
    the carve's definition, which the manifest records) hashes, in primary-key order."""
    sha256 = hashlib.sha256
    return b"".join([sha256(repr(r).encode()).digest() for r in rows])
