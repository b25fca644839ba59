"""What each section of the moderation bench reports: figures next to their same-run baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Figure:
    """One measured figure and the baseline measured beside it (None: no baseline applies)."""

    name: str
    value: float | None
    unit: str  # "%", "bits", "ms", "MB", "auc", "count"
    baseline: float | None = None
    baseline_name: str = ""
    ratio: bool = False  # report value / baseline
    note: str = ""

    @property
    def ratio_value(self) -> float | None:
        if not self.ratio or self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        r = self.ratio_value
        return {
            "name": self.name,
            "unit": self.unit,
            "carveout": _round(self.value),
            "baseline": _round(self.baseline),
            "baseline_name": self.baseline_name or None,
            "ratio": round(r, 3) if r is not None else None,
            "note": self.note or None,
        }


@dataclass
class Section:
    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def distribution(values: Sequence[int | float]) -> dict[str, float]:
    """min / median / p95 / max of a list of distances or times."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": float(min(values)),
        "median": percentile([float(v) for v in values], 50),
        "p95": percentile([float(v) for v in values], 95),
        "max": float(max(values)),
    }


def share(flags: Sequence[bool]) -> float:
    """Percentage of true flags (0 for none)."""
    return 100.0 * sum(flags) / len(flags) if flags else 0.0
