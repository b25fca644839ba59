"""`carveout bench feed` runs end to end on a small synthetic catalogue and cleans up after itself;
the figures are checked for shape and sanity, never against timings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from carveout.cli.bench import bench_app
from carveout.core import settings

# Alone, after the parallel suite (`./dev test`): another test's server or temp folder must not
# be taken for this bench's leftovers.
pytestmark = pytest.mark.serial

DATASETS = settings.datasets_dir()
CALIBRATION = (
    DATASETS / "kuairand" / "video_features_basic_pure.csv",
    DATASETS / "kuairec" / "kuairec_caption_category.csv",
)


def children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(
    not all(p.is_file() for p in CALIBRATION), reason=f"KuaiRand/KuaiRec not in {DATASETS}"
)
def test_bench_feed_small_run_writes_sane_json_and_leaves_nothing_behind(
    tmp_path: Path, private_tmp: Path
) -> None:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")  # as the main CLI mounts it
    out = tmp_path / "feed.json"
    before = children(os.getpid())

    args = ["bench", "feed", "--videos", "3000", "--viewers", "10", "--requests", "100"]
    args += ["--rounds", "2", "--rps", "10", "--http-seconds", "2", "--json", str(out)]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output
    data = json.loads(out.read_text())
    assert "synthetic" in data["label"]
    assert data["videos"] == 3000 and data["viewers"] == 10
    assert {"cpu", "cores", "ram_gib", "python", "sqlite"} <= data["machine"].keys()
    for mode in ("ann", "exact"):
        stats = data["latency_ms"][mode]
        assert 0 < stats["p50"] <= stats["p99"], stats
    assert data["latency_ms"]["ann"]["n"] == 200  # two rounds of 100
    assert len(data["rounds"]) == 2
    for r in data["rounds"]:
        assert 0 < r["p50"] <= r["p99"] and r["load_1min"] >= 0
    assert [r["expansion"] for r in data["recall"]] == [128, 256, 512, 1024]
    assert all(0.0 <= r["recall"] <= 1.0 for r in data["recall"])
    assert data["serving_expansion"] in {r["expansion"] for r in data["recall"]}
    swap = data["swap"]
    assert swap["rate"] == 10 and swap["background_swap_s"] > 0 and swap["on_request_load_s"] > 0
    for name in ("steady", "background", "on_request"):
        window = swap[name]
        assert window["requests"] > 0 and 0 < window["p50_ms"] <= window["p99_ms"]
        assert window["p99_ms"] <= window["max_ms"]
        assert window["seconds"] == swap["steady"]["seconds"]  # the same length each
    http = data["http"]
    assert http["rate"] == 10 and http["users"] == 11  # 10 viewers and 1 with no history
    measured = http["measured"]
    assert measured["errors"] == 0, measured.get("first_error")
    assert measured["requests"] > 0 and 0 < measured["p50_ms"] <= measured["p99_ms"]
    assert http["baseline"]["errors"] == 0 and http["baseline"]["requests"] > 0
    slowest = [ms for _due, ms in http["slowest"]]
    assert 0 < len(slowest) <= 10 and slowest == sorted(slowest, reverse=True)
    assert slowest[0] == pytest.approx(measured["max_ms"], abs=0.01)
    assert all(0 <= due <= 2.0 for due, _ms in http["slowest"])  # due within the measured 2 s
    notes = http["server_notes"]
    assert set(notes) >= {"gc", "lag", "slow"}
    assert all(ms >= 5.0 and gen in ("0", "1", "2") for _at, ms, gen in notes["gc"])
    assert all(ms >= 20.0 for _at, ms, _d in notes["lag"])
    # Every request of 50 ms or more was seen by the server's timing; those of the feed say so.
    assert all(ms >= 50.0 and path.startswith("/v1/") for _at, ms, path in notes["slow"])
    assert all(due <= 2.0 and ms >= 20.0 for due, ms in http["client_late_sends"])
    assert all(ms >= 5.0 for _at, ms, _gen in http["client_gc"])

    assert children(os.getpid()) <= before, "the feed server outlived the bench"
    assert list(private_tmp.iterdir()) == [], "the bench left a temp dir behind"
