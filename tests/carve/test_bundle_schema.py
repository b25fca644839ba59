"""A bundle's new PostgreSQL cell gets its schema by copying a migrated template database, not
by running the migrations: the result must be exactly the migrated schema, before and after
an import (whose load drops indexes and builds them again)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from carveout.carve.bundle import export_bundle, import_bundle
from carveout.carve.bundle_crypto import generate_keypair
from carveout.cells import Deployment, init_data_dir
from carveout.storage import PostgresStore, create_migrated_database
from carveout.storage.pgcluster import PgCluster
from carveout.storage.postgres import schema_template_name

pytestmark = pytest.mark.postgres

# What pg_dump's schema (every table, column, default, index, constraint, trigger and
# function) does not show: alembic's version row, and the catalog facts listed here.
CATALOG = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' '
       || coalesce(character_maximum_length::text, '-') || ' ' || is_nullable || ' '
       || coalesce(column_default, '-')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'version', version_num FROM alembic_version
ORDER BY 1, 2
"""


def _schema(server: PgCluster, url: str) -> tuple[str, list[tuple[str, str]]]:
    dbname = sa.make_url(url).database or ""
    dump = subprocess.run(
        [
            str(server.bindir / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            server.url(dbname),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pg_dump 15.14+ fences its output with \restrict and \unrestrict lines carrying a random
    # key per run: not part of the schema.
    dump = "\n".join(line for line in dump.splitlines() if "restrict " not in line)
    with psycopg.connect(server.url(dbname)) as conn:
        rows = [(str(k), str(v)) for k, v in conn.execute(CATALOG).fetchall()]
    return dump, rows


def _migrated(server: PgCluster) -> str:
    url = server.fresh_url("migrated")
    store = PostgresStore(url)
    try:
        store.migrate()
    finally:
        store.dispose()
    return url


def test_a_database_copied_from_the_template_has_the_migrated_schema(
    pg_server: PgCluster,
) -> None:
    expected = _schema(pg_server, _migrated(pg_server))
    first, second = pg_server.fresh_url("copy"), pg_server.fresh_url("copy")
    assert create_migrated_database(first)  # the template is made here if missing
    assert create_migrated_database(second)  # and copied as it is
    assert _schema(pg_server, first) == expected
    assert _schema(pg_server, second) == expected
    assert not create_migrated_database(second)  # an existing database is left alone
    with pg_server.admin() as conn:
        found = conn.execute(
            "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s",
            (schema_template_name(),),
        ).fetchone()
    assert found == (True, False)  # nobody connects to it, so a copy never finds it busy
    store = PostgresStore(second)
    try:
        assert store.migrate() == store.schema_version()  # at the newest version: no run
    finally:
        store.dispose()


def test_an_imported_postgresql_cell_ends_with_the_migrated_schema(
    loaded: Deployment, tmp_path: Path, pg_server: PgCluster
) -> None:
    """The load drops and rebuilds indexes and constraints: what it leaves is exactly the
    schema a migrated cell has."""
    expected = _schema(pg_server, _migrated(pg_server))
    key, public = generate_keypair(tmp_path / "keys")
    bundle = tmp_path / "bundle"
    export_bundle(loaded, "US,CA,AU,NZ", bundle, public)
    recipient = init_data_dir(tmp_path / "recipient")
    url = pg_server.fresh_url("imported")
    try:
        import_bundle(recipient, bundle, key, "na-anz", storage=url)
    finally:
        recipient.close()
    assert _schema(pg_server, url) == expected
