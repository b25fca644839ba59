"""`carveout bench train`: `train_cell` on a synthetic catalogue at scale, timed per stage.

The catalogue is the feed bench's (feed_catalogue.py: seeded, calibrated, SYNTHETIC); on top of
it synthetic users' watch events are written to the cell's events table: each user's history
length and watch ratios are drawn from KuaiRec's watch_ratio.csv (real ratios, resampled), 80 %
of their watches from two favourite categories, videos within a category drawn with a Zipf-like
popularity (what co-watch feeds on). Training then runs in a child process, so its peak memory
(ru_maxrss of the child) is training's alone, not the generator's."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from carveout.bench.feed_catalogue import (
    LABEL,
    POLICY,
    Progress,
    Synthetic,
    build_catalogue,
    calibrate,
)
from carveout.cells import Cell, init_data_dir
from carveout.core import InvalidInput, new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend.ratings import read_ratings

CHUNK = 100_000
FAVOURITE_SHARE = 0.8


@dataclass
class TrainBenchResult:
    label: str
    videos: int
    users: int
    watch_events: int
    setup_s: dict[str, float]
    train_s: float
    stages_s: dict[str, float]  # train_cell's own stages
    peak_rss_mib: float  # the training child process
    load_1min: tuple[float, float]  # before and after training
    manifest_rows: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _watches(
    cell: Cell, syn: Synthetic, users: int, datasets: Path, seed: int, progress: Progress
) -> int:
    """Write the synthetic users' watch events; returns how many."""
    source = datasets / "kuairec" / "watch_ratio.csv"
    if not source.is_file():
        raise InvalidInput(f"{source} is missing: history lengths and ratios are drawn from it")
    real = read_ratings(source)
    _ids, per_user = np.unique(real.users, return_counts=True)
    rng = np.random.default_rng(seed + 3)
    n_videos = len(syn.video_ids)
    lengths = rng.choice(per_user, size=users)
    # Videos by category, each category's in a Zipf-like popularity order.
    by_cat = [np.flatnonzero(syn.categories == c) for c in range(int(syn.categories.max()) + 1)]
    by_cat = [rng.permutation(v) for v in by_cat if v.size]
    cat_weight = np.array([v.size for v in by_cat], dtype=np.float64)
    cat_weight /= cat_weight.sum()

    def zipf_pick(pool: np.ndarray, n: int) -> np.ndarray:
        ranks = np.minimum(rng.zipf(1.3, size=n) - 1, pool.size - 1)
        return pool[ranks]

    events = TABLES["events"]
    durations = _durations(cell, syn)
    written = 0
    batch: list[dict[str, Any]] = []
    created = now_ms() - 3600 * 1000
    for u in range(users):
        user_id = new_id()
        n = int(lengths[u])
        favourites = rng.choice(len(by_cat), size=2, p=cat_weight)
        fav = rng.random(n) < FAVOURITE_SHARE
        picks = np.empty(n, dtype=np.int64)
        which = rng.integers(0, 2, size=n)
        for j, cat in enumerate(favourites.tolist()):
            mask = fav & (which == j)
            picks[mask] = zipf_pick(by_cat[cat], int(mask.sum()))
        picks[~fav] = rng.integers(0, n_videos, size=int((~fav).sum()))
        picks = np.unique(picks)  # one watch per video, as in KuaiRec
        ratios = rng.choice(real.ratios, size=picks.size)
        for i, ratio in zip(picks.tolist(), ratios.tolist(), strict=True):
            batch.append(
                {
                    "id": new_id(),
                    "domicile": "US",
                    "user_id": user_id,
                    "video_id": syn.video_ids[i],
                    "kind": "watch",
                    "watched_ms": int(ratio * durations[i]),
                    "created_at": created,
                }
            )
        if len(batch) >= CHUNK or u == users - 1:
            with cell.store.begin() as conn:
                conn.execute(sa.insert(events), batch)
            written += len(batch)
            batch = []
            progress("synthetic watch events", u + 1, users, f"{written:,} events")
    return written


def _durations(cell: Cell, syn: Synthetic) -> list[int]:
    videos = TABLES["videos"]
    with cell.store.connect() as conn:
        by_id = dict(conn.execute(sa.select(videos.c.id, videos.c.duration_ms)).tuples().all())
    return [int(by_id[v]) for v in syn.video_ids]


def run_train_bench(
    datasets: Path, videos: int, users: int, seed: int, progress: Progress
) -> TrainBenchResult:
    cal = calibrate(datasets)
    setup: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="carveout-train-") as tmp:
        data_dir = Path(tmp) / "data"
        deployment = init_data_dir(data_dir, POLICY)
        cell = deployment.cell("bench")
        try:
            started = time.perf_counter()
            syn = build_catalogue(cell, cal, videos, seed, progress)
            setup["catalogue_s"] = time.perf_counter() - started
            started = time.perf_counter()
            n_events = _watches(cell, syn, users, datasets, seed, progress)
            setup["events_s"] = time.perf_counter() - started
        finally:
            deployment.close()
        progress("train_cell", 0, 1, "in a child process")
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        child = subprocess.run(  # noqa: S603  # this interpreter, this module
            [sys.executable, "-m", "carveout.bench.feed_train", str(data_dir), str(seed)],
            capture_output=True,
            text=True,
            check=False,
        )
        train_s = time.perf_counter() - started
        if child.returncode != 0:
            raise InvalidInput(f"training failed:\n{child.stderr[-3000:]}")
        progress("train_cell", 1, 1, f"{train_s:.0f} s")
        out = json.loads(child.stdout.strip().splitlines()[-1])
    return TrainBenchResult(
        label=LABEL,
        videos=videos,
        users=users,
        watch_events=n_events,
        setup_s=setup,
        train_s=train_s,
        stages_s=out["stages"],
        # Linux reports ru_maxrss in KiB; the largest of this process's children.
        peak_rss_mib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        load_1min=(load_before, os.getloadavg()[0]),
        manifest_rows=out["rows"],
    )


def _child(data_dir: Path, seed: int) -> None:
    """Train the bench cell and print its stage times as one JSON line."""
    from carveout.cells import Deployment
    from carveout.recommend.training import train_cell

    deployment = Deployment.open(data_dir)
    stages: dict[str, float] = {}
    try:
        manifest = train_cell(deployment.cell("bench"), seed, stages=stages)
    finally:
        deployment.close()
    print(json.dumps({"stages": stages, "rows": manifest.rows}))  # to the parent


if __name__ == "__main__":
    _child(Path(sys.argv[1]), int(sys.argv[2]))
