"""The transfer bundle: export sealed to the recipient's key, import into another organisation's
deployment with no network path; corrupt, missing or mis-keyed bundles refused by name."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import zstandard
from carving import MOVING
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carveout.carve.bundle import ImportReport, export_bundle, import_bundle
from carveout.carve.bundle_crypto import (
    MANIFEST_SEAL,
    BundleError,
    generate_keypair,
    load_private,
    open_sealed,
    recipient_cipher,
    seal,
    seal_manifest,
)
from carveout.carve.bundle_format import row_digests, rows_json
from carveout.cells import Cell, Deployment, init_data_dir
from carveout.core import now_ms
from carveout.datamap import TABLES
from carveout.events import recompute_all
from carveout.storage import fingerprint, table_digest
from carveout.storage.pgcluster import PgCluster

TABLES_CHECKED = ("users", "videos", "events", "likes", "blobs")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "recipient-keys")


@pytest.fixture
def exported(loaded: Deployment, keys: tuple[Path, Path], tmp_path: Path) -> Path:
    bundle = tmp_path / "disk" / "bundle"
    export_bundle(loaded, "US,CA,AU,NZ", bundle, keys[1])
    return bundle


def _recipient(tmp_path: Path) -> Deployment:
    return init_data_dir(tmp_path / "new-owner")


def test_bundle_round_trip_into_another_organisation(
    loaded: Deployment, exported: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    source = loaded.cell("global")
    expected = {
        t: table_digest(source.store, t, TABLES[t].c.domicile.in_(MOVING))
        for t in ("users", "videos", "events", "likes", "blobs")
    }
    manifest = json.loads((exported / "manifest.json").read_text())
    # Nothing readable in the bundle: the rows are sealed.
    blob = b"".join(p.read_bytes() for p in (exported / "chunks").iterdir())
    assert b"kuairec" not in blob and b"@kuairec.invalid" not in blob
    recipient = _recipient(tmp_path)
    report = import_bundle(recipient, exported, keys[0], "na-anz")
    cell = recipient.cell("na-anz")
    _assert_carried(cell, report, expected)
    assert report.blobs == len([c for c in manifest["chunks"] if c["kind"] == "blob"])
    assert recipient.cell_for("CA").name == "na-anz"


def test_import_resumes_after_an_interruption(
    exported: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    recipient = _recipient(tmp_path)
    seen = 0

    def pull_the_plug(_what: str, _n: int) -> None:
        nonlocal seen
        seen += 1
        if seen == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_bundle(recipient, exported, keys[0], "na-anz", progress=pull_the_plug)
    report = import_bundle(recipient, exported, keys[0], "na-anz")
    # Progress is reported after a chunk commits: chunks 1-7 are in, loading resumes at 8.
    assert report.resumed_from == 8
    assert report.leaks.leaks == 0


@pytest.mark.parametrize("damage", ["missing", "flipped", "other-key", "no-manifest"])
def test_damaged_bundles_are_refused_by_name_and_load_nothing(
    exported: Path, keys: tuple[Path, Path], tmp_path: Path, damage: str
) -> None:
    key = keys[0]
    chunk = exported / "chunks" / "000003.bin"
    manifest = json.loads((exported / "manifest.json").read_text())
    what = manifest["chunks"][2].get("table", "blob")
    if damage == "missing":
        chunk.unlink()
        needle = rf"chunk 000003 \({what}\) is missing"
    elif damage == "flipped":
        data = bytearray(chunk.read_bytes())
        data[100] ^= 0x01
        chunk.write_bytes(bytes(data))
        needle = rf"chunk 000003 \({what}\) is corrupt"
    elif damage == "other-key":
        key, _ = generate_keypair(tmp_path / "someone-else")
        needle = "encrypted to another key"
    else:
        (exported / "manifest.json").unlink()
        needle = "manifest.json is missing"
    recipient = _recipient(tmp_path)
    before = fingerprint(recipient.cell("global").store)
    with pytest.raises(BundleError, match=needle):
        import_bundle(recipient, exported, key, "na-anz")
    assert fingerprint(recipient.cell("global").store).diff(before) == []
    assert "na-anz" not in recipient.policy.names
    cell_db = recipient.data_dir / "cells" / "na-anz" / "cell.db"
    if cell_db.exists():  # a refused import may not leave rows anywhere
        with sa.create_engine(f"sqlite:///{cell_db}").connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM users").scalar_one() == 0


def test_export_refuses_a_non_empty_folder(
    loaded: Deployment, exported: Path, keys: tuple[Path, Path]
) -> None:
    from carveout.core import Conflict

    with pytest.raises(Conflict, match="not empty"):
        export_bundle(loaded, "US", exported, keys[1])
    shutil.rmtree(exported)


def _expected(loaded: Deployment) -> dict[str, tuple[int, str]]:
    source = loaded.cell("global")
    return {
        t: table_digest(source.store, t, TABLES[t].c.domicile.in_(MOVING)) for t in TABLES_CHECKED
    }


def _assert_carried(cell: Cell, report: ImportReport, expected: dict[str, tuple[int, str]]) -> None:
    """The imported cell holds J's rows of each checked table exactly as the source did, and
    its leak scan found nothing foreign."""
    for name, digest in expected.items():
        assert table_digest(cell.store, name) == digest, name
    assert report.leaks.leaks == 0


def _interrupt_at(n: int) -> Callable[[str, int], None]:
    seen = 0

    def pull_the_plug(_what: str, _n: int) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            raise KeyboardInterrupt

    return pull_the_plug


@pytest.mark.postgres
def test_bundle_into_postgresql_resumes_and_matches(
    loaded: Deployment,
    exported: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    pg_server: PgCluster,
) -> None:
    """The PostgreSQL load path (COPY, indexes built after the load): interrupted after a few
    chunks, resumed, every table equal to the source's rows of J, every index there."""
    expected = _expected(loaded)
    recipient = _recipient(tmp_path)
    url = pg_server.fresh_url("bundle")
    with pytest.raises(KeyboardInterrupt):
        import_bundle(
            recipient, exported, keys[0], "na-anz", storage=url, progress=_interrupt_at(5)
        )
    report = import_bundle(recipient, exported, keys[0], "na-anz", storage=url)
    assert report.resumed_from == 6
    cell = recipient.cell("na-anz")
    assert cell.store.backend == "postgresql"
    _assert_carried(cell, report, expected)
    with cell.store.connect() as conn:
        have = {i["name"] for i in sa.inspect(conn).get_indexes("events")}
    assert {i.name for i in TABLES["events"].indexes} <= have


def _rewrite(
    bundle: Path, key: Path, change: Callable[[dict[str, Any], bytes], bytes], fmt: int = 2
) -> None:
    """Re-seal every rows chunk after `change` (the plaintext's new bytes), as a sender would
    have written them, and fix the manifest's checksums: a well-formed bundle with other rows."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    cipher = recipient_cipher(
        load_private(key), bytes.fromhex(manifest["ephemeral_public_key"]), manifest["bundle_id"]
    )
    repr_digests: dict[str, Any] = {}
    for chunk in manifest["chunks"]:
        if chunk["kind"] != "rows":
            continue
        path = bundle / chunk["file"]
        plain = zstandard.ZstdDecompressor().decompress(
            open_sealed(cipher, chunk["index"], path.read_bytes(), "test")
        )
        plain = change(chunk, plain)
        if fmt < 3:
            repr_digests.setdefault(chunk["table"], hashlib.sha256()).update(
                row_digests(_rows_of(plain, fmt))
            )
        sealed = seal(cipher, chunk["index"], zstandard.ZstdCompressor().compress(plain))
        path.write_bytes(sealed)
        chunk["sha256"] = hashlib.sha256(sealed).hexdigest()
        chunk["bytes"] = len(sealed)
    if fmt < 3:  # formats 1 and 2 digest each table's rows' repr
        manifest.pop("table_digest")
        for name, sha in repr_digests.items():
            manifest["tables"][name][1] = sha.hexdigest()
    manifest["format"] = fmt
    manifest["root_digest"] = hashlib.sha256(
        "".join(c["sha256"] for c in manifest["chunks"]).encode()
    ).hexdigest()
    _reseal(manifest, cipher)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _rows_of(plain: bytes, fmt: int) -> list[tuple[Any, ...]]:
    """A chunk's rows as tuples, as the database returns them (for the repr digests)."""
    if fmt == 1:
        return [tuple(json.loads(line).values()) for line in plain.splitlines()]
    return [tuple(row) for row in json.loads(plain)["rows"]]


def _reseal(manifest: dict[str, Any], cipher: AESGCM) -> None:
    manifest.pop(MANIFEST_SEAL, None)
    manifest[MANIFEST_SEAL] = seal_manifest(cipher, manifest)


def _cipher(bundle: Path, key: Path) -> AESGCM:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return recipient_cipher(
        load_private(key), bytes.fromhex(manifest["ephemeral_public_key"]), manifest["bundle_id"]
    )


def _as_json_lines(_chunk: dict[str, Any], plain: bytes) -> bytes:
    body = json.loads(plain)
    lines = [
        json.dumps(dict(zip(body["columns"], row, strict=True)), ensure_ascii=False)
        for row in body["rows"]
    ]
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    ("fmt", "change", "backend"),
    [
        (1, _as_json_lines, "sqlite"),
        (2, lambda _c, plain: json.dumps(json.loads(plain)).encode(), "sqlite"),
        pytest.param(
            2,
            lambda _c, plain: json.dumps(json.loads(plain)).encode(),
            "postgresql",
            marks=pytest.mark.postgres,
        ),
    ],
)
def test_format_1_and_2_bundles_still_import(
    loaded: Deployment,
    exported: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    fmt: int,
    change: Callable[[dict[str, Any], bytes], bytes],
    backend: str,
) -> None:
    """Bundles written before format 3 (format 1: one JSON object per row, per line; both:
    the standard library's JSON, each table's digest over its rows' repr) load and verify
    the same, on either backend (PostgreSQL verifies chunk by chunk)."""
    _rewrite(exported, keys[0], change, fmt=fmt)
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["format"] == fmt and "table_digest" not in manifest
    expected = _expected(loaded)
    recipient = _recipient(tmp_path)
    storage = "sqlite"
    if backend == "postgresql":
        storage = request.getfixturevalue("pg_server").fresh_url("bundle")
    report = import_bundle(recipient, exported, keys[0], "na-anz", storage=storage)
    cell = recipient.cell("na-anz")
    _assert_carried(cell, report, expected)


def _rename_a_column(chunk: dict[str, Any], plain: bytes) -> bytes:
    body = json.loads(plain)
    if chunk["table"] == "events":
        body["columns"] = ["not_a_column" if c == "kind" else c for c in body["columns"]]
    return json.dumps(body).encode()


def _move_a_row_abroad(chunk: dict[str, Any], plain: bytes) -> bytes:
    body = json.loads(plain)
    if chunk["table"] == "likes":
        body["rows"][0][body["columns"].index("domicile")] = "GB"
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("change", "fmt", "needle"),
    [
        (_rename_a_column, 2, r"chunk \d{6} \(events\): its columns .* are not events's"),
        (_move_a_row_abroad, 2, r"chunk \d{6} holds rows outside"),
        (lambda _c, plain: plain, 4, "unknown bundle format 4"),
    ],
)
def test_bundles_with_wrong_rows_or_a_newer_format_are_refused(
    exported: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    change: Callable[[dict[str, Any], bytes], bytes],
    fmt: int,
    needle: str,
) -> None:
    _rewrite(exported, keys[0], change, fmt)
    recipient = _recipient(tmp_path)
    with pytest.raises(BundleError, match=needle):
        import_bundle(recipient, exported, keys[0], "na-anz")
    assert "na-anz" not in recipient.policy.names


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_table_that_does_not_match_its_digest_is_named(
    exported: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    """The verify of each table runs while later tables load: its mismatch still stops the
    import, names the table, and the cell never joins the policy (SQLite reads each table
    back whole, PostgreSQL chunk by chunk)."""
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["tables"]["likes"][1] = "0" * 64
    _reseal(manifest, _cipher(exported, keys[0]))  # as a sender would have sealed it
    (exported / "manifest.json").write_text(json.dumps(manifest))
    recipient = _recipient(tmp_path)
    storage = "sqlite"
    if backend == "postgresql":
        storage = request.getfixturevalue("pg_server").fresh_url("bundle")
    with pytest.raises(BundleError, match="table likes has"):
        import_bundle(recipient, exported, keys[0], "na-anz", storage=storage)
    assert "na-anz" not in recipient.policy.names


def test_an_unknown_kind_of_table_digest_is_refused_by_name(
    exported: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["table_digest"] == "rows-json-sha256"
    manifest["table_digest"] = "rows-json-sha3"
    _reseal(manifest, _cipher(exported, keys[0]))
    (exported / "manifest.json").write_text(json.dumps(manifest))
    recipient = _recipient(tmp_path)
    with pytest.raises(BundleError, match="unknown table digest 'rows-json-sha3'"):
        import_bundle(recipient, exported, keys[0], "na-anz")
    assert not (recipient.data_dir / "cells" / "na-anz").exists()


_MEASURES = sa.Table(
    "measures",
    sa.MetaData(),
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("score", sa.Float),
    sa.Column("count", sa.BigInteger),
)


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (("b", float("nan"), 1), "table measures, column score: a NaN or infinite value"),
        (("b", float("-inf"), 1), "table measures, column score: a NaN or infinite value"),
        (("b", 0.5, 2**70), "table measures, column count: a value the bundle's JSON cannot"),
    ],
)
def test_values_the_bundles_json_cannot_carry_are_refused_by_name(
    row: tuple[Any, ...], needle: str
) -> None:
    """orjson writes NaN and infinities as null and refuses integers beyond 64 bits: an export
    refuses them, naming the table and column, rather than carrying another value. (No carved
    table has a float column today, so a table of the test's own.)"""
    rows = [("a", None, 0), ("c", 0.0, -1), row]
    with pytest.raises(BundleError, match=needle):
        rows_json(_MEASURES, rows)
    assert rows_json(_MEASURES, rows[:2]) == b'[["a",null,0],["c",0.0,-1]]'


def test_a_text_in_a_float_column_does_not_hide_an_infinity() -> None:
    """SQLite lets a float column hold a text: the check skips it and still finds the rest."""
    with pytest.raises(BundleError, match="column score: a NaN or infinite value"):
        rows_json(_MEASURES, [("a", "1.5", 0), ("b", float("inf"), 1)])
    assert rows_json(_MEASURES, [("a", "1.5", 0), ("b", 2.5, 1)]) == b'[["a","1.5",0],["b",2.5,1]]'


def test_import_interrupted_among_the_blob_files_resumes(
    loaded: Deployment, exported: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """Blob files are stored ahead of their progress records (on a worker thread): an import
    cut off among them resumes at the first blob chunk not recorded, finds what was stored,
    and ends with every file and row in place."""
    manifest = json.loads((exported / "manifest.json").read_text())
    blob_chunks = [c["index"] for c in manifest["chunks"] if c["kind"] == "blob"]
    assert len(blob_chunks) >= 3
    recipient = _recipient(tmp_path)
    # One progress call per chunk, after it commits: cut off right after the second blob file.
    with pytest.raises(KeyboardInterrupt):
        import_bundle(
            recipient, exported, keys[0], "na-anz", progress=_interrupt_at(blob_chunks[1])
        )
    report = import_bundle(recipient, exported, keys[0], "na-anz")
    assert report.resumed_from == blob_chunks[1] + 1
    assert report.rows == {}  # every rows chunk was in before the plug was pulled
    assert report.blobs == len(blob_chunks) - 2
    assert report.leaks.leaks == 0 and report.leaks.missing_blob_files == []
    cell = recipient.cell("na-anz")
    for name, digest in _expected(loaded).items():
        assert table_digest(cell.store, name) == digest, name


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda m: m["tables"]["likes"].__setitem__(1, "0" * 64), "changed after the bundle"),
        (lambda m: m["jurisdictions"].append("GB"), "changed after the bundle"),
        (lambda m: m["tables"]["likes"].__setitem__(0, 1), "changed after the bundle"),
        (lambda m: m.pop(MANIFEST_SEAL), "has no seal"),
        (lambda m: m.__setitem__(MANIFEST_SEAL, "zz"), "changed after the bundle"),
    ],
)
def test_a_manifest_changed_after_export_is_refused_before_loading(
    exported: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], object],
    needle: str,
) -> None:
    """What the manifest says is sealed with the bundle's key: editing it (a digest, the
    jurisdictions, a row count) without the key is named before a single row loads."""
    manifest = json.loads((exported / "manifest.json").read_text())
    edit(manifest)
    (exported / "manifest.json").write_text(json.dumps(manifest))
    recipient = _recipient(tmp_path)
    with pytest.raises(BundleError, match=needle):
        import_bundle(recipient, exported, keys[0], "na-anz")
    assert "na-anz" not in recipient.policy.names
    assert not (recipient.data_dir / "cells" / "na-anz").exists()


def _counters(cell: Cell) -> dict[str, tuple[Any, ...]]:
    stats = TABLES["video_stats"]
    columns = [c for c in stats.c if c.name not in ("video_id", "updated_at")]
    with cell.store.connect() as conn:
        return {
            str(r[0]): tuple(r[1:]) for r in conn.execute(sa.select(stats.c.video_id, *columns))
        }


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
@pytest.mark.parametrize("interrupted", [False, True])
def test_counters_after_import_are_those_the_loaded_events_give(
    exported: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
    interrupted: bool,
) -> None:
    """The bundle carries no counters: the import counts them from the rows it parses (a whole
    run) or has the database rebuild them (a resumed run, which did not parse what was loaded
    before). Either way they are what a rebuild from the imported cell's own events gives."""
    recipient = _recipient(tmp_path)
    storage = "sqlite"
    if backend == "postgresql":
        storage = request.getfixturevalue("pg_server").fresh_url("bundle")
    if interrupted:
        with pytest.raises(KeyboardInterrupt):
            import_bundle(
                recipient, exported, keys[0], "na-anz", storage=storage, progress=_interrupt_at(6)
            )
    import_bundle(recipient, exported, keys[0], "na-anz", storage=storage)
    cell = recipient.cell("na-anz")
    imported = _counters(cell)
    recompute_all(cell.store, now_ms())
    rebuilt = _counters(cell)
    with cell.store.connect() as conn:
        videos = conn.execute(sa.select(sa.func.count()).select_from(TABLES["videos"])).scalar()
    assert len(imported) == videos > 0
    watches = [c.name for c in TABLES["video_stats"].c].index("watches") - 1
    assert sum(row[watches] for row in rebuilt.values()) > 0  # not all zero
    assert imported.keys() == rebuilt.keys()
    for video, (domicile, *counts) in rebuilt.items():
        assert imported[video][0] == domicile
        assert list(imported[video][1:]) == pytest.approx(counts, rel=1e-12), video


def test_a_table_the_bundle_says_is_empty_is_checked_empty(
    exported: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The tables the bundle holds no row of are checked together at the end: a digest that
    is not that of no rows is refused, and so is a row written into one meanwhile."""
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["tables"]["follows"][0] == 0
    original = json.dumps(manifest)
    manifest["tables"]["follows"][1] = "0" * 64
    _reseal(manifest, _cipher(exported, keys[0]))  # as a sender would have sealed it
    (exported / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="table follows is empty, but its digest is not"):
        import_bundle(_recipient(tmp_path / "a"), exported, keys[0], "na-anz")
    (exported / "manifest.json").write_text(original)
    recipient = _recipient(tmp_path / "b")
    follows = TABLES["follows"]

    def write_a_follow(_what: str, _n: int) -> None:
        db = recipient.data_dir / "cells" / "na-anz" / "cell.db"
        with sa.create_engine(f"sqlite:///{db}").begin() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(follows)).scalar() == 0:
                row = {c.name: 1 for c in follows.c if c.type.python_type is int}
                row |= {c.name: "x" for c in follows.c if c.type.python_type is str}
                conn.execute(sa.insert(follows).values(row | {"domicile": "US"}))

    with pytest.raises(BundleError, match="table follows holds rows the bundle does not"):
        import_bundle(recipient, exported, keys[0], "na-anz", progress=write_a_follow)
    assert "na-anz" not in recipient.policy.names
