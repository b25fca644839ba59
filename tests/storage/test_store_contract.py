"""The storage contract: one suite every Store backend (SQLite, PostgreSQL) must pass."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from carveout.core import new_id
from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import (
    PostgresStore,
    SqliteStore,
    Store,
    connection_digest,
    fingerprint,
    open_store,
    relation_sizes,
    row_counts,
    schema_head,
    table_digest,
)

Rows = dict[str, list[dict[str, Any]]]

BIG = 2**53 + 1  # the first integer a float64 (and so a careless JSON layer) cannot hold
# No -0.0: SQLite stores integral REAL values as integers and returns 0.0 (sign lost).
FLOATS = [0.1 + 0.2, 1 / 3, 2.5e-308, 1.7976931348623157e308, 5e-324, -1e-9, 123456.789]
CAPTION_ZH = "周末去海边冲浪 🏄‍♀️🌊 第一次站起来！"
COMMENT_EMOJI = "太好看了 😂👍🏽 — naïve café ✓ 𝄞"
CODES = ["US", "DE", "CN", "BR", "IN", "JP", "FR", "SG"]


# --- rows, valid per the data map --------------------------------------------------------------


def user(i: int, **over: Any) -> dict[str, Any]:
    # The store holds whatever text the sealed columns get (services seal them; see
    # tests/privacy): plain values here exercise unicode and edge cases at the storage layer.
    row = {
        "id": new_id(),
        "domicile": CODES[i % len(CODES)],
        "handle": f"user_{i}",
        "display_name": "张伟 👋" if i % 3 == 0 else f"User {i}",
        "email": f"user{i}@example.org",
        "birth_year": None if i % 2 else str(1990 + i % 20),
        "password_hash": "" if i % 4 == 0 else "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "status": "active",
        "created_at": 1_700_000_000_000 + i,
        "handle_lookup": hashlib.sha256(f"handle {i}".encode()).hexdigest(),
        "email_lookup": None if i % 5 == 4 else hashlib.sha256(f"email {i}".encode()).hexdigest(),
    }
    return row | over


def dataset(n: int = 6, seed: int = 7) -> Rows:
    """A small cell touching every table, every nullable column (None and not) and edge values."""
    rng = random.Random(seed)
    users = [user(i) for i in range(n)]
    blobs, videos, restrictions, follows, likes, comments, events, stats = ([] for _ in range(8))
    for i, u in enumerate(users):
        blob = {
            "id": new_id(),
            "domicile": u["domicile"],
            "sha256": f"{i:064x}",
            "size_bytes": BIG + i,
            "content_type": "video/mp4",
            "owner_id": u["id"],
            "created_at": 1_700_000_000_100 + i,
        }
        video = {
            "id": new_id(),
            "domicile": u["domicile"],
            "creator_id": u["id"],
            "caption": CAPTION_ZH if i % 2 == 0 else f"clip {i}",
            "hashtags": json.dumps(["冲浪", "beach", "🌊"], ensure_ascii=False),
            "category": "sports",
            "duration_ms": 15_000 + i,
            "width": 1080,
            "height": 1920,
            "blob_id": blob["id"],
            "status": "published",
            "external_ref": f"kuairec:{i}" if i % 2 else None,
            "origin_cell": None,
            "created_at": 1_700_000_000_200 + i,
        }
        blobs.append(blob)
        videos.append(video)
        restrictions.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "video_id": video["id"],
                "jurisdiction": "DE",
                "reason": "Jugendschutz: nicht für Minderjährige",
                "created_at": 1_700_000_000_300 + i,
            }
        )
        stats.append(
            {
                "video_id": video["id"],
                "domicile": u["domicile"],
                "impressions": BIG,
                "watches": 2**63 - 1 - i,
                "watched_ms": -(2**63) + i,
                "watch_ratio_sum": FLOATS[i % len(FLOATS)],
                "likes": i,
                "comments": 0,
                "shares": 1,
                "skips": 2,
                "popularity": FLOATS[(i + 1) % len(FLOATS)],
                "updated_at": 1_700_000_000_400 + i,
            }
        )
    for i, u in enumerate(users):
        other = users[(i + 1) % n]
        video = videos[(i + 2) % n]
        follows.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "follower_id": u["id"],
                "followee_id": other["id"],
                "created_at": 1_700_000_000_500 + i,
            }
        )
        likes.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "user_id": u["id"],
                "video_id": video["id"],
                "created_at": 1_700_000_000_600 + i,
            }
        )
        comments.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "user_id": u["id"],
                "video_id": video["id"],
                "body": COMMENT_EMOJI if i % 2 == 0 else "nice",
                "status": "visible",
                "created_at": 1_700_000_000_700 + i,
            }
        )
        for kind in ("impression", "watch", "skip"):
            events.append(
                {
                    "id": new_id(),
                    "domicile": u["domicile"],
                    "user_id": u["id"],
                    "video_id": video["id"],
                    "kind": kind,
                    "watched_ms": rng.randrange(1, 60_000) if kind == "watch" else None,
                    "created_at": 1_700_000_000_800 + i,
                }
            )
    sessions = [
        {
            "id": new_id(),
            "domicile": u["domicile"],
            "user_id": u["id"],
            "token_hash": f"{i + 1000:064x}",
            "created_at": 1_700_000_000_900 + i,
            "expires_at": 1_800_000_000_000 + i,
        }
        for i, u in enumerate(users)
    ]
    banks, bank_hashes, decisions, reviews = ([] for _ in range(4))
    for i, u in enumerate(users):
        bank = {
            "id": new_id(),
            "domicile": u["domicile"],
            "name": f"bank-{i}",
            "description": "Bänke: 銀行" if i % 2 else "",
            "action": "reject",
            "ground": "terms",
            "category": "STATEMENT_CATEGORY_NONE",
            "enabled": i % 2 == 0,
            "created_at": 1_700_000_001_000 + i,
            "updated_at": 1_700_000_001_100 + i,
        }
        banks.append(bank)
        bank_hashes.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "bank_id": bank["id"],
                "pdq": f"{i + 7:064x}",
                "note": "threatexchange:123",
                "enabled": True,
                "created_at": 1_700_000_001_200 + i,
            }
        )
        decision = {
            "id": new_id(),
            "domicile": u["domicile"],
            "subject_id": u["id"],
            "target_kind": "video",
            "target_id": videos[i]["id"],
            "visibility": "restricted",
            "ground": "illegal",
            "rule": "§ 86a StGB",
            "category": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
            "territorial_scope": json.dumps(["DE", "SG"]),
            "automated_detection": True,
            "automated_decision": i % 2 == 1,
            "source": "automated",
            "facts": CAPTION_ZH,
            "signals": json.dumps({"text": {"toxicity": 0.5}}),
            "reviewer_id": users[(i + 1) % n]["id"] if i % 2 else None,
            "supersedes": None if i % 2 else new_id(),
            "content_date": 1_700_000_000_200 + i,
            "created_at": 1_700_000_001_300 + i,
        }
        decisions.append(decision)
        reviews.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "subject_id": u["id"],
                "origin": "report",
                "target_kind": "video",
                "target_id": videos[i]["id"],
                "decision_id": decision["id"] if i % 2 else None,
                "filed_by": users[(i + 1) % n]["id"] if i % 2 else None,
                "note": COMMENT_EMOJI,
                "status": "open" if i % 2 else "closed",
                "outcome_id": None if i % 2 else decision["id"],
                "created_at": 1_700_000_001_400 + i,
                "closed_at": None if i % 2 else 1_700_000_001_500 + i,
            }
        )
    consents, requests, access = ([] for _ in range(3))
    for i, u in enumerate(users):
        consents.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "user_id": u["id"],
                "purpose": "training" if i % 2 else "personalisation",
                "granted": i % 3 != 0,
                "version": "2026-11",
                "created_at": 1_700_000_001_600 + i,
            }
        )
        requests.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "user_id": u["id"],
                "kind": "erasure" if i % 2 else "export",
                "status": "done",
                "requested_by": u["id"],
                "purpose": "" if i % 2 else "Art. 17 request, verified by 电话",
                "progress": json.dumps({"steps": ["keys"]}),
                "receipt": json.dumps({"keys": 1}) if i % 2 else None,
                "file": None if i % 2 else f"{i}.zip",
                "created_at": 1_700_000_001_700 + i,
                "updated_at": 1_700_000_001_800 + i,
            }
        )
        access.append(
            {
                "id": new_id(),
                "domicile": u["domicile"],
                "seq": i + 1,
                "staff_id": users[(i + 1) % n]["id"],
                "role": "privacy_officer",
                "subject_id": u["id"],
                "action": "GET /v1/staff/users/{id}",
                "purpose": COMMENT_EMOJI,
                "created_at": 1_700_000_001_900 + i,
                "prev_hash": "0" * 64,
                "hash": f"{i:064x}",
            }
        )
    return {
        "consents": consents,
        "privacy_requests": requests,
        "staff_access_log": access,
        "users": users,
        "sessions": sessions,
        "blobs": blobs,
        "videos": videos,
        "video_restrictions": restrictions,
        "follows": follows,
        "likes": likes,
        "comments": comments,
        "events": events,
        "video_stats": stats,
        "moderation_banks": banks,
        "moderation_bank_hashes": bank_hashes,
        "moderation_decisions": decisions,
        "moderation_reviews": reviews,
    }


def load(store: Store, rows: Rows, *, shuffle_seed: int | None = None) -> None:
    tables = list(rows)
    if shuffle_seed is not None:
        rng = random.Random(shuffle_seed)
        rng.shuffle(tables)
    for table in tables:
        batch = list(rows[table])
        if shuffle_seed is not None:
            rng.shuffle(batch)
        assert store.bulk_insert(table, batch) == len(batch)


def insert_bulk(store: Store, table: str, rows: list[dict[str, Any]]) -> None:
    assert store.bulk_insert(table, rows) == len(rows)


def insert_execute(store: Store, table: str, rows: list[dict[str, Any]]) -> None:
    with store.begin() as conn:
        conn.execute(TABLES[table].insert(), rows)


# Every write path a service may use: the backend's bulk loader and a plain INSERT.
WRITE_PATHS = [pytest.param(insert_bulk, id="bulk"), pytest.param(insert_execute, id="execute")]
Insert = Callable[[Store, str, list[dict[str, Any]]], None]


def all_rows(store: Store, table: str, chunk_size: int = 5000) -> list[dict[str, Any]]:
    pk = DATA_MAP.table(table).primary_key
    return [
        row for chunk in store.iter_rows(table, order_by=pk, chunk_size=chunk_size) for row in chunk
    ]


def count(store: Store, table: str) -> int:
    with store.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(TABLES[table])).scalar_one())


def sorted_by_pk(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pk = DATA_MAP.table(table).primary_key
    return sorted(rows, key=lambda r: r[pk])


# --- the data map itself ------------------------------------------------------------------------


CATEGORY = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")


def test_every_column_is_categorised_and_every_table_has_a_domicile() -> None:
    for table in DATA_MAP.tables:
        assert "domicile" in table.column_names, f"{table.name} has no domicile column"
    for table in DATA_MAP.all_tables:
        assert table.primary_key in table.column_names
        for col in table.columns:
            assert CATEGORY.match(col.category), (
                f"{table.name}.{col.name}: category {col.category!r} is not a dotted category"
            )
            assert col.description.strip(), f"{table.name}.{col.name} has no description"


# --- schema -------------------------------------------------------------------------------------


def test_migrate_is_idempotent_and_reports_version(store: Store) -> None:
    assert store.schema_version() == schema_head()
    before = store.columns()
    load(store, {"users": [user(1)]})
    assert store.migrate() == schema_head()
    assert store.migrate() == schema_head()
    assert store.schema_version() == schema_head()
    assert store.columns() == before
    assert count(store, "users") == 1  # migrating again keeps the data


def test_unmigrated_store_has_no_version(store: Store, make_store: Callable[..., Store]) -> None:
    blank = make_store(store.backend, migrate=False)
    assert blank.schema_version() is None
    assert blank.columns() == {}
    assert blank.migrate() == schema_head()


def test_columns_are_exactly_the_data_map(store: Store) -> None:
    """An unmapped column in the database (or a mapped column missing from it) fails here:
    every stored column must be described, categorised and domiciled in the data map."""
    expected = {t.name: list(t.column_names) for t in DATA_MAP.all_tables}
    assert store.columns() == expected


def test_columns_follow_the_schema_as_the_databases_inspector_sees_it(store: Store) -> None:
    """A column added or dropped, a table added: `columns` reports what the database holds,
    exactly as SQLAlchemy's inspector reflects it (PostgreSQL reads its catalogue in one
    query instead; a dropped column stays in that catalogue, marked dropped)."""
    with store.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE follows ADD COLUMN note TEXT")
        conn.exec_driver_sql("ALTER TABLE likes DROP COLUMN created_at")
        conn.exec_driver_sql("CREATE TABLE extra (id INTEGER PRIMARY KEY, label TEXT)")
        conn.exec_driver_sql("CREATE VIEW extra_view AS SELECT id FROM extra")
    found = store.columns()
    inspector = sa.inspect(store.engine)
    assert found == {
        name: [c["name"] for c in inspector.get_columns(name)]
        for name in inspector.get_table_names()
        if name != "alembic_version"
    }
    assert found["follows"][-1] == "note" and "created_at" not in found["likes"]
    assert found["extra"] == ["id", "label"] and "extra_view" not in found


def test_relation_sizes_tell_the_big_table_from_the_small_ones(store: Store) -> None:
    """Which tables are big, known without counting rows: an export or a verify starts with
    the largest. Only the tables asked about; a table with rows is bigger than an empty one."""
    with store.begin() as conn:
        conn.execute(
            sa.insert(TABLES["events"]),
            [
                {
                    "id": new_id(),
                    "user_id": new_id(),
                    "video_id": new_id(),
                    "domicile": "US",
                    "kind": "watch",
                    "watched_ms": i,
                    "created_at": i,
                }
                for i in range(3000)
            ],
        )
    with store.connect() as conn:
        sizes = relation_sizes(conn, ["events", "likes", "follows"])
    assert set(sizes) == {"events", "likes", "follows"}
    assert sizes["events"] > 3000 * 40 and sizes["events"] > sizes["likes"]


def test_row_counts_count_each_table_under_its_own_condition(store: Store) -> None:
    """Several tables counted in one query (the leak scan, the import's empty-table check):
    each under its own condition or none, in the order asked, empty tables as 0."""
    load(store, {"users": [user(i) for i in range(10)]})  # CODES: 2 in US, 1 in DE
    users = TABLES["users"]
    with store.connect() as conn:
        counts = row_counts(
            conn,
            {"likes": None, "users": users.c.domicile == "US", "follows": None},
        )
        everyone = row_counts(conn, {"users": None})
        nothing = row_counts(conn, {})
    assert list(counts.items()) == [("likes", 0), ("users", 2), ("follows", 0)]
    assert everyone == {"users": 10}
    assert nothing == {}


def test_backend_and_url(store: Store) -> None:
    assert store.backend in {"sqlite", "postgresql"}
    assert store.url.startswith(store.backend)


# --- reading and writing ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 7, 5000])
def test_iter_rows_returns_rows_in_pk_order_across_chunks(store: Store, chunk_size: int) -> None:
    rows = [user(i) for i in range(20)]
    random.Random(1).shuffle(rows)
    load(store, {"users": rows})
    chunks = list(store.iter_rows("users", order_by="id", chunk_size=chunk_size))
    assert all(0 < len(c) <= chunk_size for c in chunks)
    assert [len(c) for c in chunks[:-1]] == [chunk_size] * (len(chunks) - 1)
    assert len(chunks) == -(-20 // chunk_size)
    assert [r for c in chunks for r in c] == sorted_by_pk("users", rows)


def test_iter_rows_on_a_table_keyed_by_another_column(store: Store) -> None:
    stats = dataset(9)["video_stats"]
    load(store, {"video_stats": stats})
    assert all_rows(store, "video_stats", chunk_size=2) == sorted_by_pk("video_stats", stats)


def test_iter_rows_of_an_empty_table_yields_nothing(store: Store) -> None:
    assert list(store.iter_rows("events", order_by="id", chunk_size=3)) == []
    assert store.bulk_insert("events", []) == 0


def test_every_table_round_trips(store: Store) -> None:
    rows = dataset()
    load(store, rows, shuffle_seed=3)
    for table in DATA_MAP.names:
        assert all_rows(store, table, chunk_size=4) == sorted_by_pk(table, rows[table]), table


@pytest.mark.parametrize("insert", WRITE_PATHS)
def test_nullable_columns_round_trip_none(store: Store, insert: Insert) -> None:
    u = user(1, birth_year=None)
    insert(store, "users", [u])
    video = dataset(1)["videos"][0] | {"creator_id": u["id"], "external_ref": None}
    insert(store, "videos", [video])
    event = dataset(1)["events"][0] | {"kind": "impression", "watched_ms": None}
    insert(store, "events", [event])
    assert all_rows(store, "users")[0]["birth_year"] is None
    assert all_rows(store, "videos")[0]["external_ref"] is None
    assert all_rows(store, "events")[0]["watched_ms"] is None


@pytest.mark.parametrize("insert", WRITE_PATHS)
def test_large_integers_and_floats_round_trip_exactly(store: Store, insert: Insert) -> None:
    stats = [
        dataset(1)["video_stats"][0]
        | {
            "video_id": new_id(),
            "impressions": BIG,
            "watches": 2**63 - 1,
            "watched_ms": -(2**63),
            "watch_ratio_sum": value,
        }
        for value in FLOATS
    ]
    insert(store, "video_stats", stats)
    got = all_rows(store, "video_stats")
    assert got == sorted_by_pk("video_stats", stats)
    for row in got:
        assert type(row["impressions"]) is int and row["impressions"] == BIG
        assert type(row["watch_ratio_sum"]) is float
    # Compare representations too: exactness, not approximate equality.
    assert sorted(repr(r["watch_ratio_sum"]) for r in got) == sorted(repr(v) for v in FLOATS)


@pytest.mark.parametrize("insert", WRITE_PATHS)
def test_unicode_round_trips(store: Store, insert: Insert) -> None:
    u = user(0, display_name="王小明 🐼", handle="xiaoming_冲浪")
    insert(store, "users", [u])
    video = dataset(1)["videos"][0] | {"creator_id": u["id"], "caption": CAPTION_ZH}
    insert(store, "videos", [video])
    comment = dataset(1)["comments"][0] | {"video_id": video["id"], "body": COMMENT_EMOJI}
    insert(store, "comments", [comment])
    assert all_rows(store, "users") == [u]
    assert all_rows(store, "videos") == [video]
    assert all_rows(store, "comments") == [comment]
    assert json.loads(all_rows(store, "videos")[0]["hashtags"]) == ["冲浪", "beach", "🌊"]


# --- transactions and constraints ---------------------------------------------------------------


def test_begin_commits_on_success(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(TABLES["users"].insert(), [user(1), user(2)])
    assert count(store, "users") == 2


def test_begin_rolls_back_on_exception(store: Store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.begin() as conn:
        conn.execute(TABLES["users"].insert(), [user(1)])
        conn.execute(TABLES["follows"].insert(), dataset(2)["follows"])
        raise Boom
    assert count(store, "users") == 0
    assert count(store, "follows") == 0


def _same_handle() -> tuple[dict[str, Any], dict[str, Any]]:
    first = user(1)
    return first, user(2, handle_lookup=first["handle_lookup"])


def _same_email() -> tuple[dict[str, Any], dict[str, Any]]:
    first = user(1)
    return first, user(2, email_lookup=first["email_lookup"])


def _same_follow() -> tuple[dict[str, Any], dict[str, Any]]:
    first = dataset(2)["follows"][0]
    return first, first | {"id": new_id(), "domicile": "FR", "created_at": 1}


DUPLICATES = [
    pytest.param("users", _same_handle, id="users.handle_lookup"),
    pytest.param("users", _same_email, id="users.email_lookup"),
    pytest.param("follows", _same_follow, id="follows.follower_followee"),
]


@pytest.mark.parametrize(("table", "pair"), DUPLICATES)
def test_unique_constraint_rejects_duplicate_and_leaves_nothing(
    store: Store, table: str, pair: Callable[[], tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    first, duplicate = pair()
    bystander = user(99)
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        conn.execute(TABLES["users"].insert(), [bystander])
        conn.execute(TABLES[table].insert(), [first])
        conn.execute(TABLES[table].insert(), [duplicate])
    assert count(store, "users") == 0
    assert count(store, table) == 0
    # The store is still usable, and the first row alone is accepted.
    insert_execute(store, table, [first])
    assert all_rows(store, table) == [first]


@pytest.mark.parametrize(("table", "pair"), DUPLICATES)
def test_bulk_insert_of_a_duplicate_raises_integrity_error_and_inserts_nothing(
    store: Store,
    table: str,
    pair: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    first, duplicate = pair()
    with pytest.raises(sa.exc.IntegrityError):
        store.bulk_insert(table, [first, duplicate])
    assert count(store, table) == 0
    insert_bulk(store, table, [first])
    with pytest.raises(sa.exc.IntegrityError):
        store.bulk_insert(table, [duplicate])
    assert all_rows(store, table) == [first]


# --- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_ignores_insertion_order(
    store: Store, make_store: Callable[..., Store]
) -> None:
    rows = dataset()
    other = make_store(store.backend)
    load(store, rows, shuffle_seed=1)
    load(other, rows, shuffle_seed=2)
    assert fingerprint(store) == fingerprint(other)
    assert fingerprint(store).diff(fingerprint(other)) == []


def test_fingerprint_sees_every_change(store: Store, make_store: Callable[..., Store]) -> None:
    rows = dataset()
    load(store, rows)
    before = fingerprint(store)
    assert before.tables["events"][0] == len(rows["events"])
    with store.begin() as conn:
        t = TABLES["video_stats"]
        victim = rows["video_stats"][0]["video_id"]
        conn.execute(t.update().where(t.c.video_id == victim).values(watch_ratio_sum=0.5000001))
    after = fingerprint(store)
    assert after != before
    assert [line.split(":")[0] for line in before.diff(after)] == ["video_stats"]
    assert fingerprint(make_store(store.backend)) != before


def _digest_by_definition(store: Store, table: str) -> tuple[int, str]:
    # The definition backup manifests and bundles recorded: sha256 over each row's sha256 of
    # repr(tuple of SQLAlchemy's values), rows in key order. It must never change meaning.
    spec = DATA_MAP.table(table)
    tbl = TABLES[table]
    with store.connect() as conn:
        rows = conn.execute(sa.select(tbl).order_by(tbl.c[spec.primary_key])).all()
    outer = hashlib.sha256()
    for row in rows:
        outer.update(hashlib.sha256(repr(tuple(row)).encode()).digest())
    return len(rows), outer.hexdigest()


def test_table_digest_keeps_its_definition(store: Store) -> None:
    load(store, dataset(9), shuffle_seed=3)
    found = fingerprint(store).tables
    for table in DATA_MAP.names:
        assert found[table] == _digest_by_definition(store, table), table
    # Booleans (SQLite stores 0/1) and floats are digested as the values SQLAlchemy returns.
    assert found["moderation_decisions"][0] > 0 and found["video_stats"][0] > 0


@pytest.mark.parametrize("batch", [1, 3, 20_000])
def test_table_digest_is_the_same_in_any_batch_size_and_filters(store: Store, batch: int) -> None:
    rows = dataset(12)
    load(store, rows, shuffle_seed=4)
    events = TABLES["events"]
    moving = events.c.domicile.in_(["US", "DE"])
    with store.connect() as conn:
        whole = connection_digest(conn, "events", batch=batch)
        part = connection_digest(conn, "events", moving, batch=batch)
    assert whole == _digest_by_definition(store, "events")
    assert part[0] == len([r for r in rows["events"] if r["domicile"] in ("US", "DE")]) > 0
    assert table_digest(store, "events", moving) == part != whole


@pytest.mark.postgres
def test_fingerprint_is_equal_across_backends(sqlite_store: Store, pg_store: Store) -> None:
    rows = dataset(12)
    load(sqlite_store, rows, shuffle_seed=5)
    load(pg_store, rows, shuffle_seed=6)
    for table in DATA_MAP.names:
        assert all_rows(sqlite_store, table, 5) == all_rows(pg_store, table, 5), table
    a, b = fingerprint(sqlite_store), fingerprint(pg_store)
    assert a.diff(b) == []
    assert a == b


# --- backend lifecycle --------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_store_creates_its_database_once(pg_url: str) -> None:
    first = open_store(pg_url)
    assert isinstance(first, PostgresStore)
    assert first.migrate() == schema_head()
    load(first, {"users": [user(1)]})
    first.dispose()
    again = PostgresStore(pg_url)  # the database exists now: opened, not re-created
    try:
        assert again.schema_version() == schema_head()
        assert count(again, "users") == 1
    finally:
        again.dispose()


@pytest.mark.postgres
def test_postgres_store_without_create_needs_an_existing_database(pg_url: str) -> None:
    store = PostgresStore(pg_url, create=False)
    try:
        with pytest.raises(sa.exc.OperationalError):
            store.schema_version()
    finally:
        store.dispose()


def test_open_store_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "cell.db"))
    try:
        assert isinstance(store, SqliteStore)
        assert store.migrate() == schema_head()
    finally:
        store.dispose()


def test_a_failed_sqlite_migration_leaves_no_half_schema(tmp_path: Path) -> None:
    """A migration that fails part-way (here: a table in the way of revision 0004; a kill
    would do the same) leaves the file as it was, and migrating again succeeds."""
    path = tmp_path / "cell.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE staff_roles (x INTEGER)")
    store = SqliteStore(path)
    try:
        with pytest.raises(sa.exc.OperationalError, match="staff_roles already exists"):
            store.migrate()
        with store.connect() as conn:
            tables = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            ).scalars()
            assert list(tables) == ["staff_roles"]  # nothing of revisions 0001-0003 either
            conn.exec_driver_sql("DROP TABLE staff_roles")
            conn.commit()
        assert store.migrate() == schema_head()
    finally:
        store.dispose()


def test_counters_rebuilt_in_steps_equal_one_rebuild(store: Store) -> None:
    """The purge's stepwise rebuild ends exactly where one full rebuild does: wrong counters
    corrected, counters of a video that is gone dropped."""
    from carveout.events import recompute_all, recompute_in_steps

    stats = TABLES["video_stats"]
    load(store, dataset(9))
    assert recompute_all(store, 5) > 0
    once = all_rows(store, "video_stats")
    with store.begin() as conn:
        conn.execute(sa.update(stats).values(watches=999, likes=7, popularity=0.0))
        gone = {**once[0], "video_id": new_id()}
        conn.execute(stats.insert(), [gone])
    assert recompute_in_steps(store, 5, step=2) == len(once)
    assert all_rows(store, "video_stats") == once


def test_migrations_create_every_index_the_schema_declares(store: Store) -> None:
    """The alembic revisions and the table definitions agree on indexes (a revision that
    forgets one leaves a lookup scanning its whole table)."""
    with store.connect() as conn:
        inspector = sa.inspect(conn)
        for name, table in TABLES.items():
            declared = {str(index.name) for index in table.indexes}
            found = {str(index["name"]) for index in inspector.get_indexes(name)}
            assert declared <= found, (name, declared - found)
