"""The transfer bundle: export sealed to the recipient's key, import into another organisation's
deployment with no network path; corrupt, missing or mis-keyed bundles refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from carving import MOVING

from carveout.carve.bundle import export_bundle, import_bundle
from carveout.carve.bundle_crypto import BundleError, generate_keypair
from carveout.cells import Deployment, init_data_dir
from carveout.datamap import TABLES
from carveout.storage import fingerprint, table_digest


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
    for name, digest in expected.items():
        assert table_digest(cell.store, name) == digest, name
    assert report.leaks.leaks == 0
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
