"""The transfer bundle's second baseline: the database's own tools on the same subset.

`tar | zstd` (bench/bundle.py) only moves bytes that were staged beforehand. This is what an
operator moving J's rows between two databases would script instead of `carve export|import`:
- PostgreSQL: export = one `psql` session running `\\copy (SELECT * FROM t WHERE domicile IN J)
  TO 't.tsv'` per carved table, then `tar | zstd -3` of those files and J's blob files; import
  = `zstd -d | tar -x`, then one `psql` session in one transaction: the tables (pg_dump's
  pre-data section of the carved tables, dumped beforehand), `\\copy t FROM 't.tsv'` per table,
  then the keys and indexes (post-data section). Into a new database of the same server.
- SQLite: export = Python's sqlite3 driver reading J's rows of each carved table in one read
  transaction, written as JSON arrays (the values as the driver returns them), then `tar |
  zstd -3` with the blob files; import = `zstd -d | tar -x`, then a new SQLite file (WAL,
  synchronous=NORMAL, as a cell): the tables' CREATE statements (read from the source
  beforehand), the driver's `executemany` per table in one transaction, then the indexes.
Neither seals, checksums or verifies anything, nor loads the blob files anywhere but a folder."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from carveout.backup.pgtools import create_database, drop_database, libpq_url, pg_tool
from carveout.bench.api import BenchError
from carveout.bench.archive import tar_zstd, untar_zstd
from carveout.carve.capture import carved_tables
from carveout.cells import Cell

PG_TOOLS = "psql \\copy (SELECT ... WHERE domicile IN J) TO, tar | zstd -3"
PG_LOAD = "zstd -d | tar -x, psql: pre-data, \\copy FROM, post-data"
SQLITE_TOOLS = "sqlite3 driver SELECT ... WHERE domicile IN J, tar | zstd -3"
SQLITE_LOAD = "zstd -d | tar -x, sqlite3 executemany into a new file, indexes"


@dataclass(frozen=True)
class NativeBaseline:
    """Everything prepared (not timed) for one source cell: the folder the export fills, its
    archive, and the schema statements the import runs."""

    backend: str  # "sqlite" or "postgresql"
    source: str  # the SQLite file, or the libpq URL of the source database
    codes: tuple[str, ...]
    folder: Path  # <folder>/rows (written by the export) and <folder>/blobs (J's files)
    archive: Path
    work: Path

    @property
    def export_tools(self) -> str:
        return PG_TOOLS if self.backend == "postgresql" else SQLITE_TOOLS

    @property
    def import_tools(self) -> str:
        return PG_LOAD if self.backend == "postgresql" else SQLITE_LOAD


def prepare(source: Cell, codes: tuple[str, ...], staged_blobs: Path, work: Path) -> NativeBaseline:
    """The export's folder with J's blob files in it (hard links of the staged copies), and
    the schema the import creates: not timed, like the tar baseline's staging."""
    assert all(len(c) == 2 and c.isalpha() for c in codes)  # validated ISO alpha-2 codes
    assert "'" not in str(work)  # paths are written into psql commands
    folder = work / "native"
    (folder / "rows").mkdir(parents=True)
    (folder / "blobs").mkdir()
    for blob in staged_blobs.iterdir():
        os.link(blob, folder / "blobs" / blob.name)
    if source.store.backend == "postgresql":
        url = libpq_url(source.store.dsn())
        for section in ("pre-data", "post-data"):
            (work / f"{section}.sql").write_bytes(_pg_dump(url, f"--section={section}"))
        native = NativeBaseline("postgresql", url, codes, folder, work / "native.tar.zst", work)
    else:
        db = Path(source.store.url.removeprefix("sqlite:///"))
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            names = [t.name for t in carved_tables()]
            marks = ", ".join("?" * len(names))
            # The tables first, then their indexes (built after the load).
            schema = conn.execute(
                f"SELECT type, sql FROM sqlite_master WHERE tbl_name IN ({marks}) "
                "AND sql IS NOT NULL ORDER BY type = 'index', name",
                names,
            ).fetchall()
        finally:
            conn.close()
        tables = ";\n".join(sql for kind, sql in schema if kind == "table") + ";\n"
        indexes = ";\n".join(sql for kind, sql in schema if kind == "index") + ";\n"
        (work / "tables.sql").write_text(tables)
        (work / "indexes.sql").write_text(indexes)
        native = NativeBaseline("sqlite", str(db), codes, folder, work / "native.tar.zst", work)
    return native


def export(native: NativeBaseline) -> None:
    """J's rows out with the database's own tools, then `tar | zstd -3` with the blob files."""
    rows = native.folder / "rows"
    in_j = ", ".join(f"'{c}'" for c in native.codes)
    if native.backend == "postgresql":
        script = native.work / "export.sql"
        script.write_text(
            "".join(
                f"\\copy (SELECT * FROM public.{t.name} WHERE domicile IN ({in_j})) "
                f"TO '{rows / t.name}.tsv'\n"
                for t in carved_tables()
            )
        )
        _psql(native.source, "-f", str(script))
    else:
        conn = sqlite3.connect(f"file:{native.source}?mode=ro", uri=True)
        try:
            conn.execute("BEGIN")  # one read snapshot for every table
            for table in carved_tables():
                key = table.primary_key
                found = conn.execute(
                    f'SELECT * FROM "{table.name}" WHERE domicile IN ({in_j}) ORDER BY "{key}"'
                ).fetchall()
                body = json.dumps(found, ensure_ascii=False).encode()
                (rows / f"{table.name}.json").write_bytes(body)
            conn.rollback()
        finally:
            conn.close()
    tar_zstd(native.folder, native.archive)


def load(native: NativeBaseline, into: Path, pg_admin_url: str | None, round_: int) -> None:
    """Unpack the archive into `into` and load the rows into a new database (a new SQLite
    file in `into`, or a new database on the PostgreSQL server, dropped afterwards: the drop
    is timed too, but costs a few milliseconds)."""
    untar_zstd(native.archive, into)
    rows = into / native.folder.name / "rows"
    if native.backend == "postgresql":
        assert pg_admin_url is not None
        name = f"native_bundle_{round_}"
        dest = create_database(pg_admin_url, name)
        try:
            script = native.work / "load.sql"
            script.write_text(
                "".join(
                    f"\\copy public.{t.name} FROM '{rows / t.name}.tsv'\n" for t in carved_tables()
                )
            )
            pre, post = native.work / "pre-data.sql", native.work / "post-data.sql"
            _psql(libpq_url(dest), "-1", "-f", str(pre), "-f", str(script), "-f", str(post))
        finally:
            drop_database(pg_admin_url, name)
        return
    conn = sqlite3.connect(into / "cell.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript("BEGIN;" + (native.work / "tables.sql").read_text() + "COMMIT;")
        conn.execute("BEGIN")
        for table in carved_tables():
            found = json.loads((rows / f"{table.name}.json").read_bytes())
            if found:
                marks = ", ".join("?" * len(found[0]))
                conn.executemany(f'INSERT INTO "{table.name}" VALUES ({marks})', found)
        conn.execute("COMMIT")
        conn.executescript("BEGIN;" + (native.work / "indexes.sql").read_text() + "COMMIT;")
    finally:
        conn.close()


def _pg_dump(url: str, *args: str) -> bytes:
    argv = [str(pg_tool("pg_dump")), "--no-owner", "--no-privileges", *args]
    for table in carved_tables():
        argv += ["-t", f"public.{table.name}"]
    done = subprocess.run(  # noqa: S603 - PostgreSQL's own tool, fixed argv
        [*argv, url], capture_output=True, check=False
    )
    if done.returncode:
        raise BenchError(f"pg_dump {' '.join(args)} failed: {done.stderr.decode()[-800:]}")
    return done.stdout


def _psql(url: str, *args: str) -> None:
    argv = [str(pg_tool("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", *args, url]
    done = subprocess.run(  # noqa: S603 - PostgreSQL's own tool, fixed argv
        argv, capture_output=True, check=False
    )
    if done.returncode:
        raise BenchError(f"psql {' '.join(args)} failed: {done.stderr.decode()[-800:]}")
