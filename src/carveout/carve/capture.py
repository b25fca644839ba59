"""STEP 3 capture, and the cutover's seal: triggers on the source that log or refuse writes of J.

Capture appends (table, primary key, op) to carve_changes in the writing transaction; applying a
change re-reads the row, so replays are harmless and the log needs no row images. The seal, set
at cutover, makes the source refuse any further write of J: a straggler that slipped past the
gateway's fence fails instead of landing where nobody will copy it. It lets through one kind of
row of J: the parts of a guest copy of the carved cell's content (exchange.GUEST_PARTS), which
the content exchange writes with the origin's domicile and the source's moderators act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from carveout import exchange
from carveout.carve.ddl import retrying
from carveout.datamap import DATA_MAP, Table, TableKind
from carveout.storage import Store

MOVED_MARKER = "carveout:moved"


def carved_tables() -> tuple[Table, ...]:
    """Tables whose rows are copied and captured; derived ones are recomputed instead."""
    return tuple(t for t in DATA_MAP.tables if t.kind is not TableKind.DERIVED)


def _codes(codes: tuple[str, ...]) -> str:
    # Jurisdiction codes are validated ISO alpha-2 codes: safe to inline in trigger DDL.
    assert all(len(c) == 2 and c.isalpha() and c.isupper() for c in codes)
    return ", ".join(f"'{c}'" for c in codes)


def _sqlite_capture(table: Table, codes: tuple[str, ...]) -> list[str]:
    j = _codes(codes)
    pk = table.primary_key
    seq = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM carve_changes)"

    def trigger(op: str, when: str, row: str) -> str:
        return (
            f"CREATE TRIGGER IF NOT EXISTS carve_cap_{table.name}_{op} AFTER {op.upper()} "
            f"ON {table.name} WHEN {when} BEGIN "
            f"INSERT INTO carve_changes (seq, table_name, row_pk, domicile, op) VALUES "
            f"({seq}, '{table.name}', {row}.{pk}, {row}.domicile, '{op}'); END"
        )

    return [
        trigger("insert", f"NEW.domicile IN ({j})", "NEW"),
        trigger("update", f"NEW.domicile IN ({j}) OR OLD.domicile IN ({j})", "NEW"),
        trigger("delete", f"OLD.domicile IN ({j})", "OLD"),
    ]


def _sealed_row(table: Table, j: str, row: str) -> str:
    """SQL: the row (NEW or OLD) is of J and not part of a guest copy."""
    guest = exchange.guest_part_sql(table.name, row)
    of_j = f"{row}.domicile IN ({j})"
    return f"({of_j})" if guest is None else f"({of_j} AND NOT {guest})"


_PURGING_ROW = "SELECT 1 FROM carve_state WHERE key = 'purging'"


def _sqlite_seal(table: Table, codes: tuple[str, ...], target: str) -> list[str]:
    j = _codes(codes)
    msg = f"{MOVED_MARKER}:{target}"
    new, old = _sealed_row(table, j, "NEW"), _sealed_row(table, j, "OLD")
    out = []
    for op, sealed in (("insert", new), ("update", f"{new} OR {old}"), ("delete", old)):
        # Last, so only rows of J pay for it: the purge's own transactions pass (`purging`).
        when = f"({sealed}) AND NOT EXISTS ({_PURGING_ROW})"
        # Dropped first: a seal installed by an older version is replaced, not kept.
        out.append(f"DROP TRIGGER IF EXISTS carve_seal_{table.name}_{op}")
        out.append(
            f"CREATE TRIGGER carve_seal_{table.name}_{op} BEFORE {op.upper()} "
            f"ON {table.name} WHEN {when} BEGIN SELECT RAISE(ABORT, '{msg}'); END"
        )
    return out


_PG_CAPTURE_FN = """
CREATE OR REPLACE FUNCTION carve_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    codes text[] := TG_ARGV[1:TG_NARGS - 1];
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF (TG_OP <> 'DELETE' AND NEW.domicile = ANY(codes))
       OR (TG_OP <> 'INSERT' AND OLD.domicile = ANY(codes)) THEN
        INSERT INTO carve_changes (table_name, row_pk, domicile, op)
        VALUES (TG_TABLE_NAME, to_jsonb(r) ->> TG_ARGV[0], r.domicile, lower(TG_OP));
    END IF;
    RETURN NULL;
END $$
"""


def _pg_guest_part_fn() -> str:
    """carve_guest_part(table, row): exchange.GUEST_PARTS as one SQL function of a row image,
    so that the seal asks it only for rows of J (the rest never pay for it)."""
    cases = []
    columns = {"domicile", "origin_cell", *(c for c, _ in exchange.GUEST_PARTS.values())}
    for name in exchange.GUEST_PARTS:
        cond = exchange.guest_part_sql(name, "r")
        assert cond is not None
        cases.append(f"WHEN '{name}' THEN {cond}")
    return (
        "CREATE OR REPLACE FUNCTION carve_guest_part(tbl text, row_image jsonb) RETURNS boolean "
        "LANGUAGE sql STABLE AS $$ SELECT CASE tbl "
        + " ".join(cases)
        + " ELSE false END FROM jsonb_to_record(row_image) AS r("
        + ", ".join(f"{c} text" for c in sorted(columns))
        + ") $$"
    )


_PG_SEAL_FN = """
CREATE OR REPLACE FUNCTION carve_seal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    codes text[] := TG_ARGV[1:TG_NARGS - 1];
BEGIN
    -- The purge deletes J's rows under the seal, flagged by a transaction-local setting:
    -- that way it never has to drop the seal (which would lock out readers).
    IF current_setting('carveout.purging', true) IS DISTINCT FROM 'on' AND (
        (TG_OP <> 'DELETE' AND NEW.domicile = ANY(codes)
         AND NOT carve_guest_part(TG_TABLE_NAME, to_jsonb(NEW)))
        OR (TG_OP <> 'INSERT' AND OLD.domicile = ANY(codes)
            AND NOT carve_guest_part(TG_TABLE_NAME, to_jsonb(OLD)))) THEN
        RAISE EXCEPTION USING MESSAGE = TG_ARGV[0];
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$
"""


def _pg_args(first: str, codes: tuple[str, ...]) -> str:
    return ", ".join([f"'{first}'", *(f"'{c}'" for c in codes)])


# Longest the seal waits for its table locks in one attempt (and never more than half of the
# server's deadlock_timeout, in ms: see install_seal).
SEAL_WAIT_MS = 100
_DEADLOCK_MS = (
    # reset_val: the writers' value, not the carve's own SET LOCAL (ddl.prefer_to_lose).
    "(SELECT reset_val::int * CASE unit WHEN 's' THEN 1000 ELSE 1 END "
    "FROM pg_settings WHERE name = 'deadlock_timeout')"
)


def _lock_in_map_order(conn: sa.Connection, *, nowait: bool = False) -> None:
    """SHARE ROW EXCLUSIVE on every carved table at once, in data-map order; readers never wait
    for it (unlike DROP TRIGGER's ACCESS EXCLUSIVE). With `nowait`, a table some writer holds
    fails the statement at once (LockNotAvailable) instead of waiting."""
    names = ", ".join(t.name for t in carved_tables())
    tail = " NOWAIT" if nowait else ""
    conn.exec_driver_sql(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE{tail}")


def pg_triggers(conn: sa.Connection, name: str) -> set[str]:
    """The tables carrying a trigger called `name` (PostgreSQL)."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        f"WHERE t.tgname = '{name}'"
    )
    return {r[0] for r in rows}


def install_capture(conn: sa.Connection, codes: tuple[str, ...]) -> None:
    if conn.dialect.name == "sqlite":
        for table in carved_tables():
            for ddl in _sqlite_capture(table, codes):
                conn.exec_driver_sql(ddl)
        return
    conn.exec_driver_sql(_PG_CAPTURE_FN)
    _lock_in_map_order(conn)
    for table in carved_tables():
        conn.exec_driver_sql(
            f"CREATE OR REPLACE TRIGGER carve_cap AFTER INSERT OR UPDATE OR DELETE ON {table.name} "
            f"FOR EACH ROW EXECUTE FUNCTION carve_capture({_pg_args(table.primary_key, codes)})"
        )


def install_seal(conn: sa.Connection, codes: tuple[str, ...], target: str) -> None:
    """Make the source refuse writes of J. On PostgreSQL this fails with LockNotAvailable,
    changing nothing, when writers keep a carved table past SEAL_WAIT_MS: run it under
    ddl.retrying."""
    if conn.dialect.name == "sqlite":
        for table in carved_tables():
            for ddl in _sqlite_seal(table, codes, target):
                conn.exec_driver_sql(ddl)
        return
    # CREATE OR REPLACE: installing the seal again (any carve's, in this database) upgrades
    # every seal already there, since they all run this one function.
    conn.exec_driver_sql(_pg_guest_part_fn())
    conn.exec_driver_sql(_PG_SEAL_FN)
    msg = f"{MOVED_MARKER}:{target}"
    # Not every writer takes its locks in map order (moderation's resolve writes decisions,
    # then videos), so a seal waiting for one table while holding others can close a cycle
    # with such a writer. PostgreSQL checks a waiter for cycles once, deadlock_timeout into
    # its wait: a writer that joins the cycle after the seal's own check would be the one
    # aborted, a second later. So the seal waits at most half the writers' deadlock_timeout
    # (lock_timeout): in a cycle it gives up first and the writer goes on; the cutover retries.
    # It does wait, though, instead of NOWAIT: under a steady load some writer nearly always
    # holds one of the tables, and waiting for the ones in flight takes milliseconds where
    # polling with NOWAIT took a fifth of a second at 170 requests/s.
    conn.exec_driver_sql(
        "SELECT set_config('lock_timeout', "
        f"least({SEAL_WAIT_MS}, {_DEADLOCK_MS} / 2)::int::text || 'ms', true)"
    )
    _lock_in_map_order(conn)
    for table in carved_tables():
        conn.exec_driver_sql(
            "CREATE OR REPLACE TRIGGER carve_seal BEFORE INSERT OR UPDATE OR DELETE ON "
            f"{table.name} FOR EACH ROW EXECUTE FUNCTION carve_seal({_pg_args(msg, codes)})"
        )


def remove_triggers(
    conn: sa.Connection, *, capture: bool, seal: bool, only: str | None = None
) -> None:
    """Drop the carve's triggers (of table `only`, or of every table). On PostgreSQL this
    fails with LockNotAvailable, changing nothing, while a writer is busy on one of the
    tables: run it under ddl.retrying."""
    if conn.dialect.name == "sqlite":
        for table in carved_tables():
            for op in ("insert", "update", "delete"):
                if capture:
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS carve_cap_{table.name}_{op}")
                if seal:
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS carve_seal_{table.name}_{op}")
        return
    # Only triggers that exist: DROP TRIGGER locks its table ACCESS EXCLUSIVE even when there is
    # nothing to drop, and that would stall every reader of a serving cell.
    drops = [
        (name, relname)
        for name, wanted in (("carve_cap", capture), ("carve_seal", seal))
        if wanted
        for relname in sorted(pg_triggers(conn, name))
        if only is None or relname == only
    ]
    if not drops:
        return
    # ACCESS EXCLUSIVE conflicts with the reads inside a writer's transaction too (events.record
    # reads the videos, then inserts events), so no order of taking these locks is safe if we
    # wait for them: holding `events` while waiting for `videos` deadlocks that writer, and
    # PostgreSQL aborts whichever of the two checks first. The carve's short deadlock_timeout
    # does not settle it: the check runs once per wait, so a writer that starts waiting first
    # checks first and is aborted, an HTTP 500. Hence NOWAIT: the carve never waits while it
    # holds a lock, so it is never in a deadlock; a busy table fails this attempt at once with
    # nothing dropped, writers queued behind a lock it took go on, and the caller retries.
    tables = ", ".join(sorted({relname for _name, relname in drops}))
    conn.exec_driver_sql(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE NOWAIT")
    for name, relname in drops:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {relname}")


@contextmanager
def purging(conn: sa.Connection) -> Iterator[None]:
    """Let the body delete J's rows through the seal, inside this transaction only: on
    PostgreSQL a transaction-local setting (see carve_seal); on SQLite a `purging` row in
    carve_state, written first and deleted last in the same transaction, so no other
    connection ever sees it (SQLite has one writer at a time, and readers see only commits)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL carveout.purging = 'on'")
        yield
        return
    conn.exec_driver_sql(
        "INSERT OR REPLACE INTO carve_state (key, value, updated_at) "
        "VALUES ('purging', '\"on\"', 0)"
    )
    try:
        yield
    finally:
        conn.exec_driver_sql("DELETE FROM carve_state WHERE key = 'purging'")


def is_moved_error(exc: BaseException) -> bool:
    return MOVED_MARKER in str(exc)


def remove_capture_table_by_table(store: Store) -> None:
    """The capture triggers of a cell that serves writes, one table per transaction, each
    retried on its own: all sixteen tables quiet at one instant (what one transaction with
    every lock NOWAIT needs) may never come under steady writes, one table quiet soon does.
    Only for capture that is over (the target's, once verify has passed): a write between two
    tables' drops is logged or not, and the log is deleted after."""
    if store.backend == "sqlite":
        with store.begin() as conn:
            remove_triggers(conn, capture=True, seal=False)
        return
    with store.connect() as conn:
        tables = sorted(pg_triggers(conn, "carve_cap"))

    def drop(table: str) -> None:
        with store.begin() as conn:
            remove_triggers(conn, capture=True, seal=False, only=table)

    for table in tables:
        retrying(lambda: drop(table))  # noqa: B023 - called at once, inside this iteration
