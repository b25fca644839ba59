"""The transfer bundle's format: the manifest, the rows chunks' plaintext (format 2, still
reading format 1), and the checks of a bundle on disk before anything loads."""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout.carve.bundle_crypto import BundleError
from carveout.datamap import TABLES, Table

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


def digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
