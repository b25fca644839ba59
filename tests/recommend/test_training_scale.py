"""Training's steps rewritten for scale give what the code they replaced gave: the vectorised,
blocked co-watch equals the per-video loop entry for entry (KuaiRec's real watch ratios; seeded
data full of ties, short rows and lone videos), and the validation scores grouped by one sort
equal the per-user scan's, float for float."""

from __future__ import annotations

import numpy as np
import pytest

from carveout.core import settings
from carveout.recommend.embeddings import Interactions, cowatch
from carveout.recommend.ranker import Ranker, RankerParams, states_from_rows
from carveout.recommend.ratings import Ratings, read_ratings, split_per_user
from carveout.recommend.tuning import _ids, score_rows

WATCH_RATIO = settings.datasets_dir() / "kuairec" / "watch_ratio.csv"


def cowatch_per_video(data: Interactions, k: int) -> np.ndarray:
    """The computation as it was before (commit e29370a), kept here as the reference."""
    binary = data.matrix.copy()
    binary.data[:] = 1.0
    co = (binary.T @ binary).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    out = np.full((co.shape[0], k), -1, dtype=np.int32)
    for i in range(co.shape[0]):
        start, end = co.indptr[i], co.indptr[i + 1]
        if start == end:
            continue
        cols, counts = co.indices[start:end], co.data[start:end]
        order = np.lexsort((cols, -counts))[:k]
        out[i, : len(order)] = cols[order]
    return out


def seeded(seed: int, users: int, videos: int, per_user: int) -> Interactions:
    """Few videos per user out of a small, skewed catalogue: many equal counts (ties), some
    videos seen by one user alone, some users with a single watch."""
    rng = np.random.default_rng(seed)
    u: list[str] = []
    v: list[str] = []
    for user in range(users):
        n = 1 if user % 7 == 0 else int(rng.integers(2, per_user + 1))
        picks = np.unique(np.minimum(rng.zipf(1.5, size=n) - 1, videos - 1))
        u += [f"u{user}"] * picks.size
        v += [f"v{p}" for p in picks.tolist()]
    u.append("loner")
    v.append("only-mine")  # a video no one else watched: a row of -1
    return Interactions.build(u, v, rng.uniform(0, 3, size=len(u)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [1, 7, 16_384])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_blocked_cowatch_equals_the_per_video_loop(seed: int, block: int, k: int) -> None:
    data = seeded(seed, users=300, videos=60, per_user=12)
    want = cowatch_per_video(data, k)
    got = cowatch(data, k=k, block=block)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert (want == -1).any() and (want[:, 0] >= 0).any()  # both short and full rows occurred


@pytest.mark.skipif(not WATCH_RATIO.is_file(), reason=f"KuaiRec not in {WATCH_RATIO.parent}")
def test_cowatch_on_real_kuairec_equals_the_per_video_loop() -> None:
    ratings = read_ratings(WATCH_RATIO)
    data = Interactions.build(
        [str(u) for u in ratings.users.tolist()],
        [str(v) for v in ratings.videos.tolist()],
        ratings.ratios,
    )
    want = cowatch_per_video(data, 20)
    np.testing.assert_array_equal(cowatch(data, k=20, block=1000), want)
    np.testing.assert_array_equal(cowatch(data), want)


def score_rows_per_user(ranker: Ranker, history: Ratings, query: Ratings) -> np.ndarray:
    """score_rows as it was before (commit e29370a): each user's rows found by a full scan."""
    users, videos = query.users, query.videos
    states = states_from_rows(ranker, _ids(history.users), _ids(history.videos), history.ratios)
    out = np.empty(users.size)
    for user in np.unique(users):
        rows = np.flatnonzero(users == user)
        out[rows] = ranker.score(states.get(str(user)), _ids(videos[rows]))
    return out


@pytest.mark.skipif(not WATCH_RATIO.is_file(), reason=f"KuaiRec not in {WATCH_RATIO.parent}")
def test_grouped_validation_scores_equal_the_per_user_scan() -> None:
    ratings = read_ratings(WATCH_RATIO)
    fit_rows, valid_rows = split_per_user(ratings, 7, 0.75)
    fit, valid = ratings.take(fit_rows), ratings.take(valid_rows)
    # Group keys, so that the users' affinities count too (shuffled: rows are not by user).
    groups = {str(v): {"c1": (f"c1:{v % 5}",), "tag": (f"tag:{v % 11}",)} for v in range(20_000)}
    params = RankerParams(cap=2.0, shrink=2.0, weights=(0.5, 0.0, 0.0, 1.0))
    ranker = Ranker.fit(_ids(fit.videos), fit.ratios, groups, params)
    order = np.random.default_rng(3).permutation(len(valid))
    shuffled = valid.take(order)
    want = score_rows_per_user(ranker, fit, shuffled)
    got = score_rows(ranker, fit, shuffled)
    np.testing.assert_array_equal(got, want)
    assert np.unique(want).size > 100  # personal scores, not one prior for all
    empty = Ratings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    assert score_rows(ranker, fit, empty).size == 0
