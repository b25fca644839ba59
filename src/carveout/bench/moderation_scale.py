"""Bank scale: the multi-index against a brute-force numpy popcount over the same synthetic bank.

The bank is SYNTHETIC: uniformly random 256-bit hashes from a seed (real PDQ hashes are about
as balanced: each bit is a DCT coefficient above or below the median), plus the real published
vPDQ frame hashes of the sample videos, so the bank also holds the clusters real video frames
form. A batch is one 60-second upload's worth of frame hashes (60): each a bank hash with 0-40
random bits flipped, so some match (<= 31) and some do not. The baseline is what a user writes
first: for each query, XOR with every bank hash and popcount, in numpy."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from carveout.bench.api import Progress
from carveout.bench.moderation_figures import Figure, Section, distribution, percentile
from carveout.bench.moderation_media import sample_videos
from carveout.moderation.index import MultiIndex, pack
from carveout.moderation.pdq import MATCH_DISTANCE

STEP = "bank scale"
BATCH = 60
MAX_FLIPS = 40
U64 = npt.NDArray[np.uint64]


def brute_force(codes: U64, queries: U64, radius: int = MATCH_DISTANCE) -> set[tuple[int, int]]:
    """(query, row) of every bank hash within `radius`: XOR and popcount against all."""
    found: set[tuple[int, int]] = set()
    for q, query in enumerate(queries):
        words = np.bitwise_count(codes ^ query)  # (n, 4) uint8
        dist = words[:, 0].astype(np.uint16) + words[:, 1] + words[:, 2] + words[:, 3]
        found.update((q, int(r)) for r in np.flatnonzero(dist <= radius))
    return found


def _queries(codes: U64, rng: np.random.Generator) -> U64:
    rows = rng.integers(0, len(codes), size=BATCH)
    bits = np.unpackbits(codes[rows].astype(">u8").view(np.uint8), axis=1)
    for i in range(BATCH):
        flip = rng.choice(256, size=int(rng.integers(0, MAX_FLIPS + 1)), replace=False)
        bits[i, flip] ^= 1
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64)


def run_scale(
    datasets: Path, progress: Progress, *, synthetic: int, batches: int, seed: int
) -> Section:
    rng = np.random.default_rng(seed)
    progress(STEP, 0, batches + 1, f"{synthetic:,} synthetic hashes")
    real = pack([f.hex for v in sample_videos(datasets) for f in v.reference])
    codes = np.concatenate([rng.integers(0, 2**64, size=(synthetic, 4), dtype=np.uint64), real])
    started = time.perf_counter()
    index = MultiIndex(codes)
    build_s = time.perf_counter() - started
    ours, theirs, hits, exact = [], [], [], True
    for b in range(batches):
        queries = _queries(codes, rng)
        started = time.perf_counter()
        found = {(h.query, h.row) for h in index.search(queries, MATCH_DISTANCE)}
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        expected = brute_force(codes, queries)
        theirs.append(time.perf_counter() - started)
        exact = exact and found == expected
        hits.append(len({q for q, _ in found}))
        progress(STEP, b + 1, batches, f"batch {b + 1}: {1000 * ours[-1]:.0f} ms")
    section = Section("bank scale")
    label = f"{len(codes):,} hashes ({synthetic:,} synthetic)"
    base = "numpy XOR + popcount over all"
    section.figures += [
        Figure(
            f"lookup of {BATCH} frame hashes, p50",
            1000 * percentile(ours, 50),
            "ms",
            1000 * percentile(theirs, 50),
            base,
            ratio=True,
            note=f"{label}; {batches} batches; results identical: {'yes' if exact else 'NO'}",
        ),
        Figure(
            f"lookup of {BATCH} frame hashes, p95",
            1000 * percentile(ours, 95),
            "ms",
            1000 * percentile(theirs, 95),
            base,
            ratio=True,
        ),
        Figure(
            "index memory",
            index.nbytes / 1e6,
            "MB",
            codes.nbytes / 1e6,
            "packed hashes only",
            ratio=True,
            note=f"multi-index build {build_s:.2f} s",
        ),
    ]
    section.details = {
        "bank": {
            "hashes": len(codes),
            "synthetic": synthetic,
            "synthetic_kind": "uniformly random 256-bit hashes (SYNTHETIC), seeded",
            "real": len(real),
            "real_kind": "published vPDQ frame hashes of the ThreatExchange sample videos",
        },
        "batch": BATCH,
        "batches": batches,
        "query": f"a bank hash with 0-{MAX_FLIPS} random bits flipped",
        "radius": MATCH_DISTANCE,
        "build_s": build_s,
        "multi_index_s": distribution(ours),
        "brute_force_s": distribution(theirs),
        "queries_matching_per_batch": distribution(hits),
        "identical_results": exact,
        "index_bytes": index.nbytes,
        "packed_bytes": int(codes.nbytes),
        "seed": seed,
    }
    return section
