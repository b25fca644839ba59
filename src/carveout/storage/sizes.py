"""How big each table is, as the database knows it without counting rows: which tables are the
big ones, to start or set apart their work."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa


def relation_sizes(conn: sa.Connection, names: Sequence[str]) -> dict[str, int]:
    """Bytes of each named table (PostgreSQL: its main fork, in the connection's schema;
    SQLite: its b-tree's pages, from the dbstat table). Known without ANALYZE. Empty when the
    database cannot tell (an SQLite built without dbstat): callers fall back to their order."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            sa.text(
                "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = current_schema()::regnamespace AND relname = ANY(:names)"
            ),
            {"names": list(names)},
        ).all()
    else:
        # One aggregate row per named b-tree: dbstat walks the pages of only those (of the whole
        # database, indexes included, without the name: 0.05 s against 0.02 s for the carved
        # tables of an 80 MB cell).
        each = " UNION ALL ".join(
            f"SELECT name, pgsize FROM dbstat WHERE name = :n{i} AND aggregate = TRUE"
            for i in range(len(names))
        )
        if not each:
            return {}
        try:
            rows = conn.execute(sa.text(each), {f"n{i}": n for i, n in enumerate(names)}).all()
        except sa.exc.OperationalError:  # no such table: dbstat
            return {}
    return {str(name): int(size) for name, size in rows}
