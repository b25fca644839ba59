"""Where carveout keeps its data and finds the public datasets: one setting each."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CARVEOUT_DATA"
DATASETS_ENV = "CARVEOUT_DATASETS"


def data_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    return Path(os.environ.get(DATA_ENV, "data"))


def datasets_dir(explicit: Path | None = None) -> Path:
    """`--datasets`, else $CARVEOUT_DATASETS, else `../shared/data` beside the checkout."""
    if explicit is not None:
        return explicit
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env)
    beside_cwd = Path.cwd().parent / "shared" / "data"
    if beside_cwd.is_dir():
        return beside_cwd
    # src/carveout/core/settings.py -> checkout root is parents[3]
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"
