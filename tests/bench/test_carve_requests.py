"""`python -m carveout.bench.carve_requests` measures the carve bench's write mix in process,
on each backend, and leaves nothing behind; no timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carveout.bench import carve_requests
from carveout.core import settings
from carveout.datasets import KUAIREC_FILES, missing

DATASETS = settings.datasets_dir()
pytestmark = pytest.mark.skipif(
    bool(missing(DATASETS, KUAIREC_FILES)), reason=f"KuaiRec not in {DATASETS}"
)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_every_kind_is_measured_and_the_deployment_is_gone(
    backend: str, private_tmp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "requests.jsonl"
    carve_requests.main(
        ["--backend", backend, "--requests", "3", "--datasets", str(DATASETS), "--json", str(out)]
    )
    (line,) = out.read_text().splitlines()
    result = json.loads(line)
    assert result["backend"] == backend
    assert set(result["kinds"]) == set(carve_requests.KINDS)
    for cost in result["kinds"].values():
        assert cost["requests"] == 3 and cost["statements"] >= 1 and cost["commits"] >= 1
    assert (result["database_cpu_ms"] is None) == (backend == "sqlite")
    assert "mix:" in capsys.readouterr().out
    assert list(private_tmp.iterdir()) == []
