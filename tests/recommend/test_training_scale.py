"""Training's validation scores, grouped by one sort for scale, equal the per-user scan they
replaced, float for float (KuaiRec's real watch ratios, shuffled rows, non-zero group weights)."""

from __future__ import annotations

import numpy as np
import pytest

from carveout.core import settings
from carveout.recommend.ranker import Ranker, RankerParams, states_from_rows
from carveout.recommend.ratings import Ratings, read_ratings, split_per_user
from carveout.recommend.tuning import _ids, score_rows

WATCH_RATIO = settings.datasets_dir() / "kuairec" / "watch_ratio.csv"


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
