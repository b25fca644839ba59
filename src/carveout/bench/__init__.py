"""Benchmarks: carveout measured against the baseline a user would pick, in the same run."""

from carveout.bench.api import (
    BACKENDS,
    DATA_LABEL,
    ApiBenchConfig,
    ApiBenchResult,
    BackendReport,
    BenchError,
    ScenarioResult,
    run_api_bench,
)
from carveout.bench.loadgen import Call, Measurement, run_load

__all__ = [
    "BACKENDS",
    "DATA_LABEL",
    "ApiBenchConfig",
    "ApiBenchResult",
    "BackendReport",
    "BenchError",
    "Call",
    "Measurement",
    "ScenarioResult",
    "run_api_bench",
    "run_load",
]
