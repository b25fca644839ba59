"""Seeded random streams: one independent generator per decision an import makes.

Each decision (jurisdictions, creators, durations, ...) draws from its own stream,
`numpy.random.default_rng([seed, stream])`, so changing how one is drawn never shifts another.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    # Values are part of the documented rule (docs/datasets.md): never renumber them.
    JURISDICTION = 1
    BIRTH_YEAR = 2
    USER_CREATED = 3
    CREATOR = 4
    DURATION = 5
    BLOB = 6
    VIDEO_CREATED = 7
    WATCH_TIME = 8
    IMPRESSION_LEAD = 9
    LIKE_DELAY = 10


def rng(seed: int, stream: Stream) -> np.random.Generator:
    return np.random.default_rng([seed, int(stream)])
