"""The jurisdiction mix: a documented, seeded rule that gives imported users a country.

No public KuaiRec file says where a user lives, so carveout assigns one. The rule is exact and
reproducible: the weight table is apportioned over the users by largest remainder (so the mix
matches the table to within one user per jurisdiction, whatever the seed), then the resulting
list of codes is shuffled by a seeded permutation and handed out in user-id order. The same
seed and the same number of users always give the same assignment.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from carveout.datasets.seeding import Stream, rng

# Share of users per jurisdiction, in per mille; the rows sum to 1000. Loosely shaped on the
# audience of a global short-video service outside China: a large US share, big markets in
# Latin America and South-East Asia, and every jurisdiction of the usual carve examples
# (US, CA, AU, NZ, SG, GB) present with enough users to be visible.
JURISDICTION_WEIGHTS: Mapping[str, int] = {
    "US": 280,
    "BR": 90,
    "ID": 80,
    "MX": 60,
    "GB": 60,
    "PH": 50,
    "DE": 50,
    "IN": 50,
    "FR": 40,
    "JP": 40,
    "CA": 40,
    "AU": 30,
    "ES": 30,
    "IT": 30,
    "SG": 20,
    "KR": 20,
    "NG": 20,
    "NZ": 10,
}


def quotas(n: int, weights: Mapping[str, int] = JURISDICTION_WEIGHTS) -> dict[str, int]:
    """How many of `n` users each jurisdiction gets (largest remainder; ties in table order)."""
    total = sum(weights.values())
    if n < 0 or total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError("quotas need n >= 0 and non-negative weights with a positive sum")
    codes = list(weights)
    exact = [n * weights[c] / total for c in codes]
    counts = [int(x) for x in exact]
    short = n - sum(counts)
    by_remainder = sorted(range(len(codes)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[:short]:
        counts[i] += 1
    return dict(zip(codes, counts, strict=True))


def assign_jurisdictions(
    n: int, seed: int, weights: Mapping[str, int] = JURISDICTION_WEIGHTS
) -> list[str]:
    """The jurisdiction of each of `n` users, in user-id order."""
    counts = quotas(n, weights)
    codes = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    return [str(c) for c in rng(seed, Stream.JURISDICTION).permutation(codes)]
