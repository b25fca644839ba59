"""`carveout bench recommend`: the issue's offline protocol, every method on the same splits.

Each seed splits every user's rows 60/23 (of 83); methods fit on the training rows only (tuned
ones on a validation split carved from them) and rank each user's test rows. Fold-in users
(`--foldin`) are never trained on: their 60 rows go through the ranker's online update, then
their 23 are ranked by a model trained on all of `--data`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carveout.bench import recommend_baselines as base
from carveout.recommend.metrics import Metrics, evaluate, mean_ci
from carveout.recommend.ranker import Groups
from carveout.recommend.ratings import Ratings, read_ratings, split_per_user
from carveout.recommend.tuning import score_rows, tune
from carveout.recommend.video_groups import read_kuairec_groups

Progress = Callable[[str, float, float], None]
METHODS = ("random", "popularity", "shrunk log mean", "item-kNN", "ALS (tuned)", "ours")
FOLDIN_METHODS = ("popularity", "shrunk log mean", "ours")


@dataclass
class RecommendBenchResult:
    data: str
    foldin: str | None
    seeds: int
    per_seed: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    foldin_per_seed: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    chosen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self, which: str = "main") -> dict[str, dict[str, tuple[float, float]]]:
        rows = self.per_seed if which == "main" else self.foldin_per_seed
        return {
            method: {metric: mean_ci([s[metric] for s in seeds]) for metric in seeds[0] if seeds}
            for method, seeds in rows.items()
            if seeds
        }

    def as_json(self) -> dict[str, Any]:
        def table(which: str) -> dict[str, Any]:
            return {
                m: {k: {"mean": v[0], "ci95": v[1]} for k, v in metrics.items()}
                for m, metrics in self.summary(which).items()
            }

        return {
            "benchmark": "recommend",
            "protocol": "per-user seeded 60/23 split; NDCG@10 (gain = watch_ratio), Recall@10 "
            "of liked (watch_ratio >= 2.0), mean watch ratio of the top 10; mean and 95% CI "
            "(Student's t) over seeds",
            "data": self.data,
            "foldin": self.foldin,
            "seeds": self.seeds,
            "per_seed": self.per_seed,
            "summary": table("main"),
            "foldin_per_seed": self.foldin_per_seed,
            "foldin_summary": table("foldin"),
            "chosen_parameters": self.chosen,
            "fit_seconds": self.seconds,
        }


def _record(result: RecommendBenchResult, method: str, metrics: Metrics, started: float) -> None:
    result.per_seed.setdefault(method, []).append(metrics.as_dict())
    result.seconds[method] = result.seconds.get(method, 0.0) + time.perf_counter() - started


def _simple(method: str, train: Ratings, seed: int) -> base.Scorer:
    if method == "random":
        return base.random_scorer(seed)
    if method == "popularity":
        return base.popularity(train)
    if method == "shrunk log mean":
        return base.shrunk_log_mean(train)
    return base.item_knn(train)


def run_recommend_bench(
    data: Path,
    datasets: Path,
    seeds: int = 5,
    foldin: Path | None = None,
    progress: Progress | None = None,
) -> RecommendBenchResult:
    ratings = read_ratings(data)
    groups: Groups = {str(k): v for k, v in read_kuairec_groups(datasets).items()}
    result = RecommendBenchResult(str(data), str(foldin) if foldin else None, seeds)
    steps = seeds * len(METHODS)
    for seed in range(seeds):
        train_rows, test_rows = split_per_user(ratings, seed)
        train, test = ratings.take(train_rows), ratings.take(test_rows)
        for i, method in enumerate(METHODS[:4]):
            if progress:
                progress("recommend", seed * len(METHODS) + i, steps)
            started = time.perf_counter()
            scores = _simple(method, train, seed)(test.users, test.videos)
            _record(result, method, evaluate(test.users, test.ratios, scores), started)
        if progress:
            progress("recommend", seed * len(METHODS) + 4, steps)
        started = time.perf_counter()
        als, chosen = base.tuned_als(train, seed)
        _record(
            result,
            "ALS (tuned)",
            evaluate(test.users, test.ratios, als(test.users, test.videos)),
            started,
        )
        result.chosen.setdefault("ALS (tuned)", []).append(chosen)
        if progress:
            progress("recommend", seed * len(METHODS) + 5, steps)
        started = time.perf_counter()
        ranker, params = tune(train, groups, seed)
        scores = score_rows(ranker, train, test)
        _record(result, "ours", evaluate(test.users, test.ratios, scores), started)
        result.chosen.setdefault("ours", []).append(params)
    if foldin is not None:
        _run_foldin(result, ratings, read_ratings(foldin), groups, seeds, progress)
    if progress:
        progress("recommend", steps, steps)
    return result


def _run_foldin(
    result: RecommendBenchResult,
    ratings: Ratings,
    fresh: Ratings,
    groups: Groups,
    seeds: int,
    progress: Progress | None,
) -> None:
    overlap = np.intersect1d(np.unique(ratings.users), np.unique(fresh.users))
    if overlap.size:
        # Fold-in users must be new: drop the ones the training file already holds.
        fresh = fresh.take(np.flatnonzero(~np.isin(fresh.users, overlap)))
    for seed in range(seeds):
        if progress:
            progress("fold-in", seed, seeds)
        history_rows, test_rows = split_per_user(fresh, seed)
        history, test = fresh.take(history_rows), fresh.take(test_rows)
        ranker, _params = tune(ratings, groups, seed)
        rows = {
            "popularity": base.popularity(ratings)(test.users, test.videos),
            "shrunk log mean": base.shrunk_log_mean(ratings)(test.users, test.videos),
            # The fold-in users' 60 rows enter through Ranker.observe, the online update.
            "ours": score_rows(ranker, history, test),
        }
        for method, scores in rows.items():
            metrics = evaluate(test.users, test.ratios, scores).as_dict()
            result.foldin_per_seed.setdefault(method, []).append(metrics)
