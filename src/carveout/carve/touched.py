"""The replication path's log of touched videos, on the target: the video of every row the
subscription's apply worker writes to the tables that make up a video's counters, so the
cutover counts again only those videos inside its pause (the trigger path has its capture log
to say which)."""

from __future__ import annotations

from carveout.carve.capture import pg_triggers
from carveout.carve.ddl import retrying
from carveout.cells import Cell

# Replicated tables whose rows change a video's counters, and the column naming the video
# (video_stats itself is derived: never replicated, rebuilt from the target's own events).
_COUNTED = (("events", "video_id"), ("videos", "id"))
_TOUCHED = "carve_touched"


def watch(target: Cell) -> None:
    """Log, on the target, the video of every row the subscription applies from now on to the
    tables that make up a video's counters. The cutover then counts again only those videos
    inside its pause instead of every video (the replication path has no capture log to say
    which). Local writes (the rebuild that follows) are not logged: apply workers run with
    session_replication_role = replica, nothing else here does. Idempotent, so a resumed
    cutover starts the log afresh."""
    with target.store.begin() as conn:
        conn.exec_driver_sql(f"CREATE UNLOGGED TABLE IF NOT EXISTS {_TOUCHED} (video_id text)")
        conn.exec_driver_sql(f"TRUNCATE {_TOUCHED}")
        # Apply workers run with an empty search_path: the function names its schema.
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        log_table = f'"{schema}".{_TOUCHED}'
        conn.exec_driver_sql(
            f"""CREATE OR REPLACE FUNCTION carve_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('session_replication_role') <> 'replica' THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO {log_table} VALUES (to_jsonb(OLD) ->> TG_ARGV[0]);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO {log_table} VALUES (to_jsonb(NEW) ->> TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$"""
        )
        for table, column in _COUNTED:
            conn.exec_driver_sql(
                f"CREATE OR REPLACE TRIGGER carve_touch AFTER INSERT OR UPDATE OR DELETE ON "
                f"{table} FOR EACH ROW EXECUTE FUNCTION carve_touch('{column}')"
            )
            # Fired by the subscription's apply worker too (replica triggers are off otherwise).
            conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER carve_touch")


def take(target: Cell) -> set[str]:
    """The videos logged since `watch` or the last take, taken off the log in one
    statement: a video the subscription touches again afterwards is logged again, for the next
    take. The cutover takes once before its pause (and counts those videos again there) and
    once inside it, so the pause counts only the last moments' videos. The log itself is
    removed by `unwatch` after the pause, since its DDL waits for table locks."""
    with target.store.begin() as conn:
        rows = conn.exec_driver_sql(f"DELETE FROM {_TOUCHED} RETURNING video_id").all()
    return {str(r[0]) for r in rows if r[0] is not None}


def unwatch(target: Cell) -> None:
    """The log and its triggers removed. Harmless to leave for a moment after the switch: they
    log only the apply worker's rows, and the sealed source sends none.

    This runs right after the fence is released, when J's held writes all reach the target at
    once. DROP TRIGGER locks its table ACCESS EXCLUSIVE; waiting for that lock behind a
    released writer would queue every later writer of `events` and `videos` behind the DROP.
    So the locks are taken NOWAIT and the whole step retried (carve.ddl.retrying) until the
    tables are quiet for a moment, as capture.remove_triggers does on a serving source."""

    def drop() -> None:
        with target.store.begin() as conn:
            # Only tables that still carry it: DROP TRIGGER IF EXISTS locks a table even with
            # nothing to drop.
            counted = {table for table, _column in _COUNTED}
            present = pg_triggers(conn, "carve_touch") & counted
            if present:
                tables = ", ".join(sorted(present))
                conn.exec_driver_sql(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE NOWAIT")
                for table in sorted(present):
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS carve_touch ON {table}")
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS carve_touch()")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_TOUCHED}")

    retrying(drop)
