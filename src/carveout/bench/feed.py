"""`carveout bench feed`: For You serving at catalogue scale, ANN against exact search, freshness.

A one-cell SQLite deployment gets a synthetic catalogue (feed_catalogue.py, labelled synthetic),
viewers with watch histories logged as real events, and a synthetic model version. Then, in this
process: single feed requests of 20 (p50/p99) with the ANN index and with exact search in its
place; recall@100 of the index against exact search over the viewers' taste vectors; the time
from an acknowledged event to a changed feed; a new upload's first impression under traffic.
Then feed latency while a new model version is swapped in, in the background and on the
request as before (feed_swap.py). Then the same cell served over HTTP by uvicorn in its own
process, open-loop at a stated rate (feed_http.py)."""

from __future__ import annotations

import os
import random
import resource
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carveout import events
from carveout.accounts import User, sealed_user_rows
from carveout.bench.feed_catalogue import (
    LABEL,
    POLICY,
    Progress,
    Synthetic,
    build_catalogue,
    calibrate,
    save_model,
)
from carveout.bench.feed_http import HttpFeedResult, measure_http
from carveout.bench.feed_swap import SwapResult, measure_swap
from carveout.cells import Cell, init_data_dir
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend import candidates, for_you, service
from carveout.recommend.ann import AnnIndex, ExactIndex
from carveout.recommend.cell_recommender import CellRecommender

FEED = 20
K = 100
EXPANSIONS = (128, 256, 512, 1024)  # the served one (ann.EXPANSION_SEARCH) among them


@dataclass
class FeedBenchResult:
    label: str
    videos: int
    creators: int
    viewers: int
    setup_s: dict[str, float]
    latency_ms: dict[str, dict[str, float]]  # "ann" | "exact" -> p50, p99, mean (all rounds)
    rounds: list[dict[str, float]]  # each round of ANN requests: p50, p99, load average
    recall: list[dict[str, float]]  # per expansion: recall@100, search p50/p99 (ms)
    exact_search_ms: dict[str, float]
    serving_expansion: int
    event_to_feed_ms: dict[str, float]
    first_impression_ms: dict[str, float]
    traffic_rps: float
    swap: SwapResult | None = None  # feed latency while a new model version loads
    http: HttpFeedResult | None = None  # None when skipped (--http-seconds 0)
    max_rss_mib: float = 0.0  # this process's peak memory: catalogue, model, index build
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _pct(values: list[float]) -> dict[str, float]:
    arr = np.array(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "n": float(arr.size),
    }


def _user(cell: Cell) -> User:
    row = {
        "id": new_id(),
        "domicile": "US",
        "handle": f"v{new_id()[-12:]}",
        "display_name": "synthetic viewer",
        "email": f"{new_id()}@example.invalid",
        "birth_year": 1990,
        "password_hash": "",
        "status": "active",
        "created_at": now_ms(),
    }
    with cell.store.begin() as conn:
        conn.execute(TABLES["users"].insert(), sealed_user_rows(cell.vault, [row]))
    return User.from_row(row)


def _viewers(cell: Cell, syn: Synthetic, n: int, history: int, seed: int) -> list[User]:
    """Viewers who each watched `history` videos, mostly of two favourite categories."""
    rng = np.random.default_rng(seed + 2)
    by_cat: dict[int, np.ndarray] = {}
    for c in np.unique(syn.categories).tolist():
        by_cat[c] = np.flatnonzero(syn.categories == c)
    cats = list(by_cat)
    users = []
    for _ in range(n):
        user = _user(cell)
        favourites = rng.choice(cats, size=2)
        batch = []
        for _ in range(history):
            pool = by_cat[int(rng.choice(favourites))] if rng.random() < 0.8 else None
            i = int(rng.choice(pool)) if pool is not None else int(rng.integers(len(syn.video_ids)))
            ms = int(rng.integers(1_000, 20_000))
            batch.append(events.EventIn(syn.video_ids[i], events.EventKind.WATCH, ms, None))
        events.record(cell.store, user, batch)
        users.append(user)
    return users


def _timed_feeds(cell: Cell, users: list[User], n: int, seed: int) -> list[float]:
    rng = random.Random(seed)  # noqa: S311  # synthetic traffic, not security
    out = []
    for _ in range(n):
        user = rng.choice(users)
        started = time.perf_counter()
        for_you(cell, user, None, FEED)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _event_to_feed(cell: Cell, users: list[User], trials: int, seed: int) -> list[float]:
    """Watch the feed's top video; time from the event's acknowledgement to a feed without it."""
    rng = random.Random(seed)  # noqa: S311  # synthetic traffic, not security
    out = []
    for _ in range(trials):
        user = rng.choice(users)
        top = for_you(cell, user, None, FEED).items[0].video.id
        events.record(cell.store, user, [events.EventIn(top, events.EventKind.WATCH, 5_000, None)])
        acked = time.perf_counter()
        while top in {i.video.id for i in for_you(cell, user, None, FEED).items}:
            if time.perf_counter() - acked > 10:
                break
        out.append((time.perf_counter() - acked) * 1000)
    return out


def _first_impressions(
    cell: Cell, users: list[User], uploads: int, rps: float, seed: int
) -> list[float]:
    """Feed traffic at `rps` in a thread; publish videos one a second; time each first shown."""
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    rng = random.Random(seed)  # noqa: S311  # synthetic traffic, not security

    def traffic() -> None:
        next_at = time.perf_counter()
        while not stop.is_set():
            for item in for_you(cell, rng.choice(users), None, FEED).items:
                vid = item.video.id
                if vid in published and vid not in seen:
                    seen[vid] = time.perf_counter()
            next_at += 1 / rps
            time.sleep(max(0.0, next_at - time.perf_counter()))

    creator = _user(cell)
    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        for _ in range(uploads):
            vid = new_id()
            row = {
                "id": vid,
                "domicile": "US",
                "creator_id": creator.id,
                "caption": "",
                "hashtags": "[]",
                "category": "fresh",
                "duration_ms": 10_000,
                "width": 720,
                "height": 1280,
                "blob_id": vid,
                "status": "published",
                "external_ref": "synthetic:fresh",
                "created_at": now_ms(),
            }
            with cell.store.begin() as conn:
                conn.execute(TABLES["videos"].insert(), [row])
            published[vid] = time.perf_counter()
            time.sleep(1.0)
        deadline = time.perf_counter() + 15
        while len(seen) < uploads and time.perf_counter() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    return [(seen.get(v, float("inf")) - t) * 1000 for v, t in published.items()]


def _recall(rec: CellRecommender, users: list[User]) -> tuple[list[dict[str, float]], Any]:
    assert rec.model is not None and isinstance(rec.model.index, AnnIndex)
    ann, exact = rec.model.index, ExactIndex(rec.model.vectors)
    queries = [q for u in users if (q := candidates.centroid(rec.model, rec.state(u))) is not None]
    truth, exact_ms = [], []
    for q in queries:
        started = time.perf_counter()
        truth.append(set(exact.search(q, K).tolist()))
        exact_ms.append((time.perf_counter() - started) * 1000)
    serving = ann.expansion_search
    rows = []
    for ef in EXPANSIONS:
        ann.expansion_search = ef
        hits, lat = [], []
        for q, t in zip(queries, truth, strict=True):
            started = time.perf_counter()
            got = ann.search(q, K)
            lat.append((time.perf_counter() - started) * 1000)
            hits.append(len(t & set(got.tolist())) / K)
        stats = _pct(lat)
        rows.append(
            {
                "expansion": ef,
                "recall": float(np.mean(hits)),
                "p50": stats["p50"],
                "p99": stats["p99"],
            }
        )
    ann.expansion_search = serving
    return rows, _pct(exact_ms)


def run_feed_bench(
    datasets: Path,
    videos: int,
    viewers: int,
    requests: int,
    rps: float,
    seed: int,
    progress: Progress,
    http_seconds: float = 30.0,
    rounds: int = 3,
) -> FeedBenchResult:
    cal = calibrate(datasets)
    setup: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="carveout-feed-") as tmp:
        deployment = init_data_dir(Path(tmp) / "data", POLICY)
        cell = deployment.cell("bench")
        try:
            started = time.perf_counter()
            syn = build_catalogue(cell, cal, videos, seed, progress)
            setup["catalogue_s"] = time.perf_counter() - started
            _manifest, setup["ann_build_s"] = save_model(cell, syn, seed, progress)
            progress("viewers", 0, viewers, "watch histories as events")
            users = _viewers(cell, syn, viewers, 20, seed)
            cold = [_user(cell) for _ in range(max(1, viewers // 10))]
            progress("viewers", viewers, viewers, "")
            started = time.perf_counter()
            rec = service.recommender(cell)
            for_you(cell, users[0], None, FEED)  # loads the model version and the catalogue
            setup["model_and_catalogue_load_s"] = time.perf_counter() - started
            progress("warm-up", 0, 1, "each viewer's state from the event log")
            for user in users + cold:
                for_you(cell, user, None, FEED)
            progress("warm-up", 1, 1, "")
            ann_ms: list[float] = []
            per_round: list[dict[str, float]] = []
            for i in range(rounds):
                progress("feed requests", i, rounds + 1, f"ANN, round {i + 1}")
                # Rounds apart, each with the machine's load: a shared machine's noise shows
                # as the spread between them.
                load = os.getloadavg()[0]
                got = _timed_feeds(cell, users + cold, requests, seed + i)
                stats = _pct(got)
                per_round.append(
                    {
                        "p50": stats["p50"],
                        "p99": stats["p99"],
                        "load_1min": load,
                        "load_1min_after": os.getloadavg()[0],
                    }
                )
                ann_ms += got
            assert rec.model is not None
            index = rec.model.index
            rec.model.index = ExactIndex(rec.model.vectors)
            progress("feed requests", rounds, rounds + 1, "exact search")
            exact_ms = _timed_feeds(cell, users + cold, requests, seed)
            rec.model.index = index
            progress("feed requests", rounds + 1, rounds + 1, "")
            recall, exact_search = _recall(rec, users)
            progress("freshness", 0, 2, "event -> feed")
            to_feed = _event_to_feed(cell, users, min(200, requests), seed)
            progress("freshness", 1, 2, "first impressions")
            first = _first_impressions(cell, users + cold, 10, rps, seed)
            progress("freshness", 2, 2, "")
            progress("model swap", 0, 1, "background, on the request, none")
            swap = measure_swap(cell, users + cold, rps, seed)
            progress("model swap", 1, 1, "")
            serving = index.expansion_search if isinstance(index, AnnIndex) else 0
            http = None
            if http_seconds > 0:
                http = measure_http(
                    Path(tmp) / "data", cell, users + cold, rps, http_seconds, seed, progress
                )
        finally:
            service.forget(cell)
            deployment.close()
    return FeedBenchResult(
        label=LABEL,
        videos=videos,
        creators=syn.n_creators,
        viewers=viewers,
        setup_s=setup,
        latency_ms={"ann": _pct(ann_ms), "exact": _pct(exact_ms)},
        rounds=per_round,
        recall=recall,
        exact_search_ms=exact_search,
        serving_expansion=serving,
        event_to_feed_ms=_pct(to_feed),
        first_impression_ms=_pct(first),
        traffic_rps=rps,
        swap=swap,
        http=http,
        # Linux reports ru_maxrss in KiB.
        max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        notes=[
            "catalogue, viewers, their histories and the model version are synthetic",
            f"{len(cold)} of the requesting users have no history (cold start)",
        ],
    )
