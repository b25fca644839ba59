"""Training's tuning, rewritten for scale, gives what it gave before, float for float (KuaiRec's
real watch ratios): validation scores grouped by one sort equal the per-user scan's, and the
parameters, validation NDCG and ranker chosen with users' states folded in once equal those of
folding them in for every trial."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from carveout.core import settings
from carveout.recommend.metrics import evaluate
from carveout.recommend.ranker import Groups, Ranker, RankerParams, states_from_rows
from carveout.recommend.ratings import Ratings, read_ratings, split_per_user
from carveout.recommend.tuning import (
    CAPS,
    PER_USER,
    SHRINKS,
    VALID_SHARE,
    WEIGHTS,
    _ids,
    fit_ranker,
    score_rows,
    tune,
    user_states,
)
from carveout.recommend.video_groups import GROUP_TYPES

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


def tune_reference(train: Ratings, groups: Groups, seed: int) -> tuple[Ranker, dict[str, object]]:
    """tune as it was before: every trial folds every user's history in again, per-user scan."""
    fit_rows, valid_rows = split_per_user(train, seed + 20_000, VALID_SHARE)
    fit, valid = train.take(fit_rows), train.take(valid_rows)

    def ndcg(ranker: Ranker) -> float:
        return evaluate(valid.users, valid.ratios, score_rows_per_user(ranker, fit, valid)).ndcg

    best_params, best = RankerParams(), -1.0
    for per_user in PER_USER:
        for cap in CAPS:
            for shrink in SHRINKS:
                params = RankerParams(cap=cap, shrink=shrink, per_user=per_user)
                got = ndcg(fit_ranker(fit, groups, params))
                if got > best:
                    best_params, best = params, got
    base = fit_ranker(fit, groups, best_params)
    weights = list(best_params.weights)
    for i, _kind in enumerate(GROUP_TYPES):
        for w in WEIGHTS[1:]:
            trial = [*weights]
            trial[i] = w
            got = ndcg(base.with_params(replace(best_params, weights=tuple(trial))))
            if got > best:
                weights, best = trial, got
    params = replace(best_params, weights=tuple(weights))
    return fit_ranker(train, groups, params), {**params.as_dict(), "valid_ndcg@10": best}


@pytest.mark.skipif(not WATCH_RATIO.is_file(), reason=f"KuaiRec not in {WATCH_RATIO.parent}")
def test_tune_chooses_and_scores_exactly_as_before() -> None:
    ratings = read_ratings(WATCH_RATIO)
    some = ratings.take(np.flatnonzero(np.isin(ratings.users, np.unique(ratings.users)[:250])))
    # Tags that pay (the user's residual on a video's tag predicts it), so that the weights
    # chosen are not all zero and the shared states matter.
    groups = {str(v): {"c1": (f"c1:{v % 4}",), "tag": (f"tag:{v % 9}",)} for v in range(20_000)}
    ranker, info = tune(some, groups, 1)
    want_ranker, want_info = tune_reference(some, groups, 1)
    assert info == want_info
    assert ranker.to_json() == want_ranker.to_json()
    # Whatever weights win: a weight trial scored with the base's states, folded in once,
    # scores exactly as folding them in with the trial's ranker.
    fit_rows, valid_rows = split_per_user(some, 1 + 20_000, VALID_SHARE)
    fit, valid = some.take(fit_rows), some.take(valid_rows)
    base = fit_ranker(fit, groups, RankerParams(cap=1.5, shrink=2.0))
    trial = base.with_params(RankerParams(cap=1.5, shrink=2.0, weights=(0.5, 0.0, 0.0, 1.0)))
    shared = score_rows(trial, fit, valid, user_states(base, fit))
    np.testing.assert_array_equal(shared, score_rows_per_user(trial, fit, valid))
    assert not np.array_equal(shared, score_rows(base, fit, valid))  # the weights counted
