"""PostgreSQL for the carve bench: the `pg_dump | psql` baselines, sizes, state and clean-up.

Two baselines, each into a fresh empty database of the same server under the same write load:
`pg_dump | psql` of the carved tables (every jurisdiction: pg_dump cannot filter rows), and the
same subset the carve copies, the way one would script it with the same tools: the schema's
pre-data section, then per table `COPY (SELECT ... WHERE domicile IN J) TO STDOUT` piped into
`COPY ... FROM STDIN`, then the post-data section (keys and indexes built after the load). Rows
are counted in the loaded database and bytes are the loaded tables' heap and TOAST
(`pg_table_size`), the same measure the carve's target gets after its copy."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from carveout.backup.pgtools import libpq_url, pg_tool
from carveout.bench.api import BenchError
from carveout.bench.carve_baseline import CopyRate
from carveout.carve.capture import carved_tables
from carveout.storage import PgCluster

PG_DUMP_PSQL = "pg_dump | psql"
PG_SUBSET = "pg_dump | psql, J's rows only (COPY with WHERE)"
PIPE_CHUNK = 1 << 20


def _connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(libpq_url(url), autocommit=True)


def _tables() -> list[str]:
    return [t.name for t in carved_tables()]


def table_bytes(url: str) -> int:
    """Heap and TOAST bytes of the carved tables in the database at `url`."""
    with _connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname = ANY(%s)",
            (_tables(),),
        ).fetchone()
    return int(row[0]) if row else 0


def table_rows(url: str) -> int:
    with _connect(url) as conn:
        total = 0
        for name in _tables():
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def _pipe(source: list[str], sink: list[str]) -> int:
    """`source | sink`, pumped here to count the bytes; a failure of either names both."""
    streamed = 0
    out = subprocess.Popen(  # noqa: S603 - PostgreSQL's own tools, fixed argv
        source, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    into = subprocess.Popen(  # noqa: S603
        sink, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert out.stdout is not None and into.stdin is not None
    while chunk := out.stdout.read(PIPE_CHUNK):  # 1 MB reads cost little
        streamed += len(chunk)
        into.stdin.write(chunk)
    into.stdin.close()
    out_err = out.stderr.read() if out.stderr else b""
    into_err = into.stderr.read() if into.stderr else b""
    out.wait()
    into.wait()
    if out.returncode or into.returncode:
        raise BenchError(
            f"{Path(source[0]).name} | {Path(sink[0]).name} failed "
            f"({out.returncode}/{into.returncode}): {out_err.decode(errors='replace')[-800:]}"
            f"{into_err.decode(errors='replace')[-800:]}"
        )
    return streamed


def _psql(url: str, *args: str) -> list[str]:
    return [str(pg_tool("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", *args, libpq_url(url)]


def _dump(url: str, *args: str) -> list[str]:
    argv = [str(pg_tool("pg_dump")), "--no-owner", "--no-privileges", *args]
    for name in _tables():
        argv += ["-t", f"public.{name}"]
    return [*argv, libpq_url(url)]


def _into_fresh_database(
    cluster: PgCluster, name: str, prefix: str, stream_key: str, copy: Callable[[str], int]
) -> CopyRate:
    """`copy(dest_url)` (returning the bytes it streamed) into a fresh database, timed; the
    rows and table bytes counted there, then the database dropped."""
    dest = cluster.create_database(prefix)
    try:
        began = time.perf_counter()
        streamed = copy(dest)
        seconds = time.perf_counter() - began
        rows = table_rows(dest)
        size = table_bytes(dest)
    finally:
        cluster.drop_database(sa.make_url(dest).database or "")
    return CopyRate(name, rows, size, seconds, {stream_key: streamed})


def pg_subset_copy(cluster: PgCluster, source_url: str, codes: tuple[str, ...]) -> CopyRate:
    """J's rows of the carved tables into a fresh database with pg_dump's schema sections
    around per-table `COPY ... WHERE domicile IN J` pipes, timed end to end."""
    in_j = ", ".join(f"'{c}'" for c in codes)  # validated ISO alpha-2 codes
    assert all(len(c) == 2 and c.isalpha() for c in codes)

    def copy(dest: str) -> int:
        streamed = _pipe(_dump(source_url, "--section=pre-data"), _psql(dest))
        for name in _tables():
            select = f"COPY (SELECT * FROM public.{name} WHERE domicile IN ({in_j})) TO STDOUT"
            streamed += _pipe(
                _psql(source_url, "-c", select), _psql(dest, "-c", f"COPY {name} FROM STDIN")
            )
        return streamed + _pipe(_dump(source_url, "--section=post-data"), _psql(dest))

    return _into_fresh_database(cluster, PG_SUBSET, "carvebench_subset", "stream_bytes", copy)


def pg_dump_psql(cluster: PgCluster, source_url: str) -> CopyRate:
    """`pg_dump -t <carved tables> source | psql fresh_db`, timed end to end; the fresh
    database is dropped afterwards."""
    return _into_fresh_database(
        cluster,
        PG_DUMP_PSQL,
        "carvebench_dump",
        "dump_stream_bytes",
        lambda dest: _pipe(_dump(source_url), _psql(dest)),
    )


def target_rows(url: str) -> int | None:
    """The target's carved rows, or None once the copy phase is recorded (or 0 if not there)."""
    try:
        with _connect(url) as conn:
            if conn.execute("SELECT 1 FROM carve_state WHERE key = 'phase:copy'").fetchone():
                return None
            total = 0
            for name in _tables():
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
                ).fetchone()
                total += int(row[0]) if row else 0
            return total
    except psycopg.Error:  # the database or its schema is not there yet
        return 0


def read_state(url: str) -> dict[str, Any]:
    with _connect(url) as conn:
        return {
            str(k): json.loads(str(v))
            for k, v in conn.execute("SELECT key, value FROM carve_state")
        }


def drop_all(cluster: PgCluster, urls: list[str]) -> None:
    """Subscriptions, replication slots and the databases: what a run (even a failed one) left."""
    names = [sa.make_url(u).database or "" for u in urls]
    with cluster.admin() as admin:
        existing = {str(r[0]) for r in admin.execute("SELECT datname FROM pg_database")}
    for url, name in zip(urls, names, strict=True):
        if name not in existing:
            continue
        with _connect(url) as conn:
            for (sub,) in conn.execute(
                "SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                "WHERE d.datname = current_database()"
            ).fetchall():
                ident = sql.Identifier(str(sub))
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
                conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    with cluster.admin() as admin:
        for _ in range(100):  # a walsender may take a moment to let go of its slot
            slots = admin.execute(
                "SELECT slot_name, active FROM pg_replication_slots WHERE database = ANY(%s)",
                (names,),
            ).fetchall()
            if not slots:
                break
            for slot, active in slots:
                if not active:
                    admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            time.sleep(0.05)
    for name in names:
        cluster.drop_database(name)


def leftovers(cluster: PgCluster, urls: list[str]) -> list[str]:
    """Databases and slots of these URLs still on the server (clean-up check)."""
    names = [sa.make_url(u).database or "" for u in urls]
    with cluster.admin() as admin:
        dbs = admin.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,))
        out = [f"database {r[0]}" for r in dbs]
        slots = admin.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE database = ANY(%s)", (names,)
        )
        out += [f"slot {r[0]}" for r in slots]
    return out
