"""The recommenders a user would pick instead, each fitted on training rows only."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from carveout.recommend.metrics import evaluate
from carveout.recommend.ratings import Ratings, split_per_user

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (users, videos) -> scores
LOG_EPS = 0.01  # log(eps + ratio): a watch ratio can be 0
VALID_SHARE = 45 / 60  # the validation split carved from a user's 60 training rows


def validation_split(train: Ratings, seed: int) -> tuple[Ratings, Ratings]:
    fit_rows, valid_rows = split_per_user(train, seed + 10_000, VALID_SHARE)
    return train.take(fit_rows), train.take(valid_rows)


def random_scorer(seed: int) -> Scorer:
    def score(users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        return np.random.default_rng(seed).random(users.size)

    return score


def _by_video(train: Ratings, values: np.ndarray, shrink: float) -> Scorer:
    n_videos = int(train.videos.max()) + 1
    sums = np.bincount(train.videos, values, n_videos)
    counts = np.bincount(train.videos, minlength=n_videos).astype(np.float64)
    mean = float(values.mean())

    def score(users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        inside = videos < n_videos
        v = np.where(inside, videos, 0)
        s = np.where(inside, sums[v], 0.0)
        n = np.where(inside, counts[v], 0.0)
        # A video never seen in training gets the global mean (shrink 0 included).
        return np.where(n > 0, (s + shrink * mean) / np.maximum(n + shrink, 1e-9), mean)

    return score


def popularity(train: Ratings) -> Scorer:
    """Mean watch ratio per video."""
    return _by_video(train, train.ratios, 0.0)


def shrunk_log_mean(train: Ratings, shrink: float = 5.0) -> Scorer:
    """Per-video mean of log watch ratio, shrunk towards the global mean by `shrink` views."""
    return _by_video(train, np.log(LOG_EPS + train.ratios), shrink)


def item_knn(train: Ratings, neighbour_shrink: float = 10.0) -> Scorer:
    """Shrunk log mean plus a cosine-weighted mean of the user's residuals on similar videos."""
    prior = shrunk_log_mean(train)
    residual = np.log(LOG_EPS + train.ratios) - prior(train.users, train.videos)
    n_users, n_videos = int(train.users.max()) + 1, int(train.videos.max()) + 1
    x = sparse.csr_matrix((residual, (train.users, train.videos)), shape=(n_users, n_videos))
    seen = sparse.csr_matrix(
        (np.ones(len(train)), (train.users, train.videos)), shape=(n_users, n_videos)
    )
    dot = (x.T @ x).toarray()
    norms = np.sqrt(np.maximum(np.diag(dot), 1e-12))
    co = (seen.T @ seen).toarray()
    sim = dot / np.outer(norms, norms) * co / (co + neighbour_shrink)
    np.fill_diagonal(sim, 0.0)

    def score(users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        out = prior(users, videos)
        for user in np.unique(users):
            rows = np.flatnonzero(users == user)
            if user >= n_users:
                continue
            hist = x.indices[x.indptr[user] : x.indptr[user + 1]]
            res = x.data[x.indptr[user] : x.indptr[user + 1]]
            cand = videos[rows]
            ok = cand < n_videos
            s = sim[np.ix_(cand[ok], hist)]
            out[rows[ok]] += (s @ res) / (np.abs(s).sum(axis=1) + 1.0)
        return out

    return score


ALS_GRID = tuple(
    (factors, reg, alpha)
    for factors in (16, 64)
    for reg in (0.01, 0.1, 1.0)
    for alpha in (1.0, 10.0)
)


def _als(train: Ratings, factors: int, reg: float, alpha: float, seed: int) -> Scorer:
    from implicit.cpu.als import AlternatingLeastSquares

    n_users, n_videos = int(train.users.max()) + 1, int(train.videos.max()) + 1
    # Confidence grows with the watch ratio: implicit's usual reading of graded feedback.
    items = sparse.csr_matrix(
        (train.ratios.astype(np.float32), (train.users, train.videos)), shape=(n_users, n_videos)
    )
    # implicit runs its own threads; OpenBLAS's pool on top of them only contends.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=reg,
            alpha=alpha,
            iterations=15,
            random_state=seed,
            num_threads=2,
        )
        model.fit(items, show_progress=False)
    uf, vf = np.asarray(model.user_factors), np.asarray(model.item_factors)

    def score(users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        ok = (users < n_users) & (videos < n_videos)
        out = np.zeros(users.size)
        out[ok] = np.einsum("ij,ij->i", uf[users[ok]], vf[videos[ok]])
        return out

    return score


def tuned_als(train: Ratings, seed: int) -> tuple[Scorer, dict[str, float]]:
    """implicit's ALS with (factors, regularization, alpha) chosen on a validation split."""
    fit, valid = validation_split(train, seed)
    best: tuple[float, tuple[int, float, float]] | None = None
    for factors, reg, alpha in ALS_GRID:
        scorer = _als(fit, factors, reg, alpha, seed)
        ndcg = evaluate(valid.users, valid.ratios, scorer(valid.users, valid.videos)).ndcg
        if best is None or ndcg > best[0]:
            best = (ndcg, (factors, reg, alpha))
    assert best is not None
    factors, reg, alpha = best[1]
    chosen = {"factors": float(factors), "regularization": reg, "alpha": alpha}
    return _als(train, factors, reg, alpha, seed), chosen
