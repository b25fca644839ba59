"""Every value type a carved table holds goes through a bundle and comes back exactly (same
value, same Python type), from either backend into either backend: text with quotes,
backslashes, control characters, line separators, emoji and CJK, empty strings, NULLs, big
and negative integers, both booleans."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from carveout.carve.bundle import export_bundle, import_bundle
from carveout.carve.bundle_crypto import generate_keypair
from carveout.carve.capture import carved_tables
from carveout.cells import init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.core import new_id
from carveout.datamap import TABLES
from carveout.storage import PostgresStore, SqliteStore, Store, table_digest
from carveout.storage.pgcluster import PgCluster

J = ("US", "CA")
BIG = 2**62 + 7
TEXTS = [
    "plain",
    "",
    'it\'s "quoted" \\ back\\slash',
    "tab\tnew\nline\rreturn",
    "control \x01\x1f\x7f chars",
    "line\u2028separator\u2029paragraph",
    "张伟 👋🏽 naïve café 𝄞",
    "'",
    '"',
    "\\",
]
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _rows() -> dict[str, list[dict[str, Any]]]:
    users, events, banks, consents = [], [], [], []
    for i, text in enumerate(TEXTS):
        domicile = J[i % 2] if i != 3 else "GB"  # one row abroad: must stay behind
        uid = new_id()
        users.append(
            {
                "id": uid,
                "domicile": domicile,
                "handle": text,
                "display_name": None if i % 3 == 0 else text + " 🏄",
                "email": f"u{i}@example.org",
                "birth_year": None,
                "password_hash": text,
                "status": "active",
                "created_at": BIG - i if i % 2 else -i,
                "handle_lookup": hashlib.sha256(f"h{i}".encode()).hexdigest(),
                "email_lookup": None if i % 2 else hashlib.sha256(f"e{i}".encode()).hexdigest(),
            }
        )
        events.append(
            {
                "id": new_id(),
                "domicile": domicile,
                "user_id": uid,
                "video_id": new_id(),
                "kind": "watch",
                "watched_ms": None if i % 2 else BIG + i,
                "created_at": i,
            }
        )
        banks.append(
            {
                "id": new_id(),
                "domicile": domicile,
                "name": f"bank {i} {text}",
                "description": text,
                "action": "block",
                "ground": "illegal",
                "category": "test",
                "enabled": i % 2 == 0,
                "created_at": 0,
                "updated_at": BIG,
            }
        )
        consents.append(
            {
                "id": new_id(),
                "domicile": domicile,
                "user_id": uid,
                "purpose": "personalisation",
                "granted": i % 2 == 1,
                "version": text[:32],
                "created_at": i,
            }
        )
    return {"users": users, "events": events, "moderation_banks": banks, "consents": consents}


@pytest.fixture
def storage_for(request: pytest.FixtureRequest) -> Iterator[Any]:
    """`storage_for(backend)`: "sqlite", or the URL of a new PostgreSQL database."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return "sqlite"
        server: PgCluster = request.getfixturevalue("pg_server")
        return server.fresh_url("types")

    yield make


def _values(store: Store, codes: tuple[str, ...]) -> dict[str, list[list[tuple[type, Any]]]]:
    out = {}
    with store.connect() as conn:
        for spec in carved_tables():
            tbl = TABLES[spec.name]
            stmt = sa.select(tbl).where(tbl.c.domicile.in_(codes)).order_by(tbl.c[spec.primary_key])
            out[spec.name] = [[(type(v), v) for v in row] for row in conn.execute(stmt)]
    return out


@pytest.mark.parametrize("source_backend", BACKENDS)
@pytest.mark.parametrize("target_backend", BACKENDS)
def test_values_and_types_round_trip_across_backends(
    source_backend: str, target_backend: str, storage_for: Any, tmp_path: Path
) -> None:
    source = init_data_dir(tmp_path / "source", one_cell_policy(storage_for(source_backend)))
    cell = source.cell("global")
    for table, rows in _rows().items():
        cell.store.bulk_insert(table, rows)
    expected = _values(cell.store, J)
    digests = {
        s.name: table_digest(cell.store, s.name, TABLES[s.name].c.domicile.in_(J))
        for s in carved_tables()
    }
    key, public = generate_keypair(tmp_path / "keys")
    export_bundle(source, ",".join(J), tmp_path / "bundle", public)
    source.close()
    # Format 3's digest of a table: sha256 of its rows' compact JSON arrays (primary-key
    # order) joined by commas, whatever the chunks.
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert (manifest["format"], manifest["table_digest"]) == (3, "rows-json-sha256")
    for name, values in expected.items():
        arrays = [orjson.dumps([v for _type, v in row]) for row in values]
        want = hashlib.sha256(b",".join(arrays)).hexdigest()
        assert manifest["tables"][name] == [len(values), want], name
    recipient = init_data_dir(tmp_path / "recipient")
    url = storage_for(target_backend)
    report = import_bundle(recipient, tmp_path / "bundle", key, "na", storage=url)
    recipient.close()
    assert report.leaks.leaks == 0
    # Read as stored, not through the cell (opening it would seal these plain test values).
    target = (
        SqliteStore(recipient.data_dir / "cells" / "na" / "cell.db")
        if url == "sqlite"
        else PostgresStore(url, create=False)
    )
    try:
        assert _values(target, J) == expected
        assert _values(target, ("GB",)) == {s.name: [] for s in carved_tables()}
        for name, digest in digests.items():
            assert table_digest(target, name) == digest, name
    finally:
        target.dispose()
    assert sum(len(v) for v in expected.values()) == 4 * (len(TEXTS) - 1)
