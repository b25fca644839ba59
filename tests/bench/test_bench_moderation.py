"""`carveout bench moderation --quick` runs end to end through the CLI; the JSON is checked for
structure and sanity (no false matches, AUCs above chance, exact index), never for timings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from test_bench_api import children
from typer.testing import CliRunner

from carveout.bench.moderation_media import NEEDED
from carveout.cli.bench import bench_app
from carveout.core import settings
from carveout.moderation.textdata import FILES

DATASETS = settings.datasets_dir()
NEEDS = [*NEEDED, *(f for files in FILES.values() for f in files)]
pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(
        any(not (DATASETS / f).exists() for f in NEEDS),
        reason=f"ThreatExchange media or moderation text data not in {DATASETS}",
    ),
]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")  # as the main CLI mounts it
    return app


def _figures(data: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    return {f["name"].strip(): f for f in data["sections"][section]["figures"]}


def test_quick_bench_moderation_reports_every_section_sanely(
    tmp_path: Path, private_tmp: Path
) -> None:
    out = tmp_path / "moderation.json"
    private = private_tmp
    children_before = set(children(os.getpid()))

    result = CliRunner().invoke(_app(), ["bench", "moderation", "--quick", "--json", str(out)])

    assert result.exit_code == 0, result.output
    assert "carveout moderation next to same-run baselines" in result.output
    assert list(private.iterdir()) == [], "the bench left a temp file or folder behind"
    assert set(children(os.getpid())) <= children_before
    data = json.loads(out.read_text())
    assert data["benchmark"] == "moderation" and data["parameters"]["quick"] is True
    assert "SYNTHETIC" in data["data"]
    assert list(data["sections"]) == ["conformance", "robustness", "text", "latency", "bank scale"]
    for section in data["sections"].values():
        for f in section["figures"]:
            assert {"name", "unit", "carveout", "baseline", "baseline_name", "ratio"} <= f.keys()

    conformance = data["sections"]["conformance"]["details"]
    assert conformance["images"]["pairs"] > 0 and conformance["videos"]["frames"] > 0
    # Our hashes are close to the published ones, and far from those of other pictures.
    for part in ("images", "videos"):
        d = conformance[part]
        assert 0 <= d["within_31_bits_pct"] <= 100
        assert d["distance_bits"]["median"] <= d["distance_bits"]["max"]
    assert conformance["images"]["closest_other_picture_bits"]["min"] > 31

    robust = data["sections"]["robustness"]["details"]
    assert robust["false_matches"] == 0
    assert robust["pairs_checked"] > 1000
    assert 0 <= robust["recall_pct"] <= 100 and 0 <= robust["baseline_recall_pct"] <= 100
    assert {"resize", "crop <= 10%", "jpeg q5-25", "blur", "brightness"} <= robust[
        "per_kind"
    ].keys()

    labels = data["sections"]["text"]["details"]["labels"]
    assert set(labels) == {"toxicity", "hate", "offensive", "spam"}
    for label, m in labels.items():
        assert 0.5 < m["roc_auc"] <= 1, label
        assert 0 <= m["review_precision"] <= 1 and 0 <= m["review_recall"] <= 1
        assert "baseline" in m, "alt-profanity-check is a dev dependency: it must have run"
        assert 0 <= m["baseline"]["roc_auc"] <= 1
    text = _figures(data, "text")
    assert text["spam: ROC AUC"]["baseline_name"].startswith("alt-profanity-check")

    [size] = data["sections"]["latency"]["details"]["per_size"]
    runs = data["parameters"]["latency_runs"]
    assert size["upload_to_decision_s"]["n"] == runs == size["decode_only_s"]["n"]
    assert sum(size["outcomes"].values()) == runs
    assert size["frames_hashed"] >= 1 and size["frames_decoded"] > size["frames_hashed"]
    assert size["upload_to_decision_s"]["median"] <= size["upload_to_decision_s"]["max"]

    scale = data["sections"]["bank scale"]["details"]
    assert scale["identical_results"] is True
    assert scale["bank"]["synthetic"] == data["parameters"]["scale_synthetic_hashes"]
    assert scale["index_bytes"] > scale["packed_bytes"] > 0
    assert scale["queries_matching_per_batch"]["min"] >= 1  # queries at 0-31 bits must match


def test_bench_moderation_rejects_an_unknown_section(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    result = CliRunner().invoke(
        _app(), ["bench", "moderation", "--sections", "conformance,vibes", "--json", str(out)]
    )
    assert result.exit_code == 1
    assert "sections must be among" in result.output
    assert not out.exists()
