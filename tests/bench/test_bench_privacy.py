"""`carveout bench privacy --quick` runs end to end through the CLI on SQLite and PostgreSQL; the
JSON is checked for structure and sanity (archives and receipts verified, zero scan hits after
erasure, the scan's control hits before it), never for timings."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from test_bench_api import children
from typer.testing import CliRunner

from carveout.bench import privacy as privacy_bench
from carveout.bench.privacy_calibration import NEEDED
from carveout.bench.privacy_measure import after_scan
from carveout.bench.privacy_subjects import EMAIL_STEM, HANDLE_STEM, NAME_STEM, Subject
from carveout.cli.bench import bench_app
from carveout.core import settings
from carveout.datasets import KUAIREC_FILES, missing
from carveout.privacy.scan import scan
from carveout.storage import PgCluster, PgClusterError
from carveout.storage.pgcluster import find_bindir

DATASETS = settings.datasets_dir()
pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(
        bool(missing(DATASETS, [*NEEDED, *KUAIREC_FILES])),
        reason=f"KuaiRec, KuaiRand or the sample clips not in {DATASETS}",
    ),
]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")  # as the main CLI mounts it
    return app


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> dict[str, Any]:
    out = tmp_path / "privacy.json"
    # A private temp folder: other benches on a shared machine write carveout-bench-* to /tmp.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    children_before = set(children(os.getpid()))
    args = ["bench", "privacy", "--quick", "--backends", backend, "--json", str(out)]

    result = CliRunner().invoke(_app(), args)

    assert result.exit_code == 0, result.output
    assert "carveout access export and erasure vs a plain SQL script" in result.output
    assert list(private.iterdir()) == [], "the bench left a temp file or folder behind"
    assert set(children(os.getpid())) <= children_before, "a server is still running"
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["benchmark"] == "privacy" and data["parameters"]["quick"] is True
    assert "SYNTHETIC" in data["data"]
    assert "median rows per user" in data["calibration"]["typical_watches"]
    assert "ASSUMED" in data["calibration"]["typical_comments"]
    return data


def _check_run(data: dict[str, Any], backend: str) -> dict[str, Any]:
    runs = data["parameters"]["runs"]
    [run] = data["results"]
    assert run["backend"] == backend and "skipped" not in run
    assert run["population_rows_synthetic"]["users"] == data["parameters"]["population_users"]
    assert run["population_rows_synthetic"]["events"] > 0
    assert run["model"]["version"], "the quick run trains a model"
    assert set(run["users"]) == {"typical", "heavy"}
    heavy = run["users"]["heavy"]["profile"]
    assert (heavy["events"], heavy["comments"], heavy["videos"]) == (10_000, 500, 50)
    typical = run["users"]["typical"]["profile"]
    assert 0 < typical["events"] < heavy["events"]
    for kind, user in run["users"].items():
        # Every archive checked row for row, every receipt against the rows the user had.
        assert user["exports_verified"] == runs == user["receipts_verified"], kind
        assert user["scan_hits_after_erasure"] == 0, kind
        assert user["control_hits_before_erasure"] >= 3 * runs, "the scan saw the export"
        assert user["archive_bytes"]["min"] > 0
        for op in ("export", "erasure"):
            figures = user[op]
            for side in ("carveout_seconds", "baseline_seconds"):
                s = figures[side]
                assert s["n"] == runs == len(s["samples"]), (kind, op, side)
                assert 0 < s["min"] <= s["p50"] <= s["p95"] <= s["max"], (kind, op, side)
            assert figures["ratio"]["p50"] > 0 and figures["ratio"]["p95"] > 0
            assert figures["baseline"]
        # Targets: export for the typical user only; erasure for both.
        assert isinstance(user["erasure"]["target_met"], bool)
        assert isinstance(user["export"]["target_met"], bool) == (kind == "typical")
    scans = run["scans"]
    assert scans["after_each_erasure"] == 2 * runs + 1  # and the warm-up user's
    assert scans["hits"] == 0
    assert any(p.startswith("cells/") for p in scans["paths"])
    assert any(p.startswith("keys/") for p in scans["paths"])
    assert any(p.startswith("exports/") for p in scans["paths"])
    return dict(run)


def test_quick_bench_privacy_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _run(tmp_path, monkeypatch, "sqlite")
    run = _check_run(data, "sqlite")
    assert run["scans"]["postgresql_data_directory"] is None


@pytest.mark.postgres
def test_quick_bench_privacy_on_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        find_bindir()
    except PgClusterError as exc:
        pytest.skip(str(exc))
    roots: list[Path] = []

    class Recorded(PgCluster):
        def start(self, attempts: int = 5) -> None:
            super().start(attempts)
            assert self.root is not None
            roots.append(self.root)

    monkeypatch.setattr(privacy_bench, "PgCluster", Recorded)
    data = _run(tmp_path, monkeypatch, "postgresql")
    run = _check_run(data, "postgresql")
    # The cluster's own files (heap, indexes, WAL) were scanned for every erased user.
    datadir = run["scans"]["postgresql_data_directory"]
    assert datadir["hits"] == 0 and datadir["bytes"] > 0
    assert datadir["users"] == 2 * data["parameters"]["runs"] + 1
    assert len(roots) == 1 and not roots[0].exists(), "the private cluster was not removed"


def test_bench_privacy_rejects_an_unknown_backend(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    args = ["bench", "privacy", "--backends", "sqlite,oracle", "--json", str(out)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 1
    assert "backends must be among" in result.output
    assert not out.exists()


def test_the_many_subjects_scan_finds_what_the_plain_scan_finds(tmp_path: Path) -> None:
    # The bench scans for many users' strings by their shared parts first: a string planted in
    # any form the plain scan tries (case, UTF-16, inside a zip) must still be found.
    rng = np.random.default_rng(0)
    subjects = [Subject("typical", f"u{i}", "CA", "t", *_strings(rng)) for i in range(3)]
    forms = [
        subjects[0].email.upper().encode("utf-8"),
        subjects[1].handle.encode("utf-16-le"),
        subjects[2].display_name.lower().encode("utf-16-be"),
    ]
    for i, form in enumerate(forms):
        (tmp_path / f"f{i}.bin").write_bytes(rng.bytes(5000) + form + rng.bytes(5000))
    with zipfile.ZipFile(tmp_path / "x.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/users.json", json.dumps({"email": subjects[2].email}))
    (tmp_path / "clean.bin").write_bytes(rng.bytes(20000))

    fast = after_scan([tmp_path], subjects)
    plain = scan([tmp_path], [n for s in subjects for n in s.needles])

    key = sorted((h.path.name, h.needle) for h in fast)
    assert key == sorted((h.path.name, h.needle) for h in plain)
    assert key == sorted(
        [
            ("f0.bin", subjects[0].email),
            ("f1.bin", subjects[1].handle),
            ("f2.bin", subjects[2].display_name),
            ("x.zip", subjects[2].email),
        ]
    )


def _strings(rng: np.random.Generator) -> tuple[str, str, str]:
    tag = rng.bytes(6).hex()
    return f"{HANDLE_STEM}{tag}", f"{NAME_STEM}{tag.upper()}", f"{tag}{EMAIL_STEM}"
