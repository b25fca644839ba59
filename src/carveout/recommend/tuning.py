"""Choosing the ranker's parameters on a validation split carved from training rows only."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from carveout.recommend.metrics import evaluate
from carveout.recommend.ranker import Groups, Ranker, RankerParams, UserState, states_from_rows
from carveout.recommend.ratings import Ratings, split_per_user
from carveout.recommend.video_groups import GROUP_TYPES

VALID_SHARE = 45 / 60
CAPS = (1.5, 2.0, 3.0)
SHRINKS = (1.0, 2.0, 5.0)
WEIGHTS = (0.0, 0.25, 0.5, 1.0)
PER_USER = (False, True)  # priors from raw capped ratios, or from rows standardised per user


def _ids(values: np.ndarray) -> list[str]:
    return [str(v) for v in values.tolist()]


def fit_ranker(train: Ratings, groups: Groups, params: RankerParams) -> Ranker:
    return Ranker.fit(_ids(train.videos), train.ratios, groups, params, train.users)


def user_states(ranker: Ranker, history: Ratings) -> dict[str, UserState]:
    return states_from_rows(ranker, _ids(history.users), _ids(history.videos), history.ratios)


def score_rows(
    ranker: Ranker,
    history: Ratings,
    query: Ratings | tuple[np.ndarray, np.ndarray],
    states: dict[str, UserState] | None = None,
) -> np.ndarray:
    """Scores of (user, video) query rows, each user's state folded in from `history` (or
    `states`, already folded in by a ranker with the same cap and priors)."""
    users, videos = (query.users, query.videos) if isinstance(query, Ratings) else query
    if states is None:
        # With no affinity weight the score is the prior whatever the state (Ranker.score):
        # folding every history row in (most of a validation pass) would change nothing.
        states = user_states(ranker, history) if any(ranker.params.weights) else {}
    out = np.empty(users.size)
    # Rows grouped by user with one stable sort (each group ascending, as flatnonzero gave
    # them): finding each user's rows by comparing every row was O(users x rows), minutes
    # per validation pass at 20k synthetic users.
    if not users.size:
        return out
    order = np.argsort(users, kind="stable")
    grouped = users[order]
    bounds = [*np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]).tolist(), users.size]
    for a, b in itertools.pairwise(bounds):
        rows = order[a:b]
        out[rows] = ranker.score(states.get(str(grouped[a])), _ids(videos[rows]))
    return out


def tune(train: Ratings, groups: Groups, seed: int) -> tuple[Ranker, dict[str, object]]:
    """Grid over per_user, cap and shrink, then per-type affinity weights one at a time; refit
    on all."""
    fit_rows, valid_rows = split_per_user(train, seed + 20_000, VALID_SHARE)
    fit, valid = train.take(fit_rows), train.take(valid_rows)

    def ndcg(ranker: Ranker, states: dict[str, UserState] | None = None) -> float:
        return evaluate(valid.users, valid.ratios, score_rows(ranker, fit, valid, states)).ndcg

    best_params, best = RankerParams(), -1.0
    for per_user, cap, shrink in itertools.product(PER_USER, CAPS, SHRINKS):
        params = RankerParams(cap=cap, shrink=shrink, per_user=per_user)
        got = ndcg(fit_ranker(fit, groups, params))
        if got > best:
            best_params, best = params, got
    base = fit_ranker(fit, groups, best_params)
    # The weight trials share base's cap and priors, so its users' states: folded in once
    # (they were folded in again for each of the 12 trials).
    states = user_states(base, fit)
    weights = list(best_params.weights)
    for i, _kind in enumerate(GROUP_TYPES):
        for w in WEIGHTS[1:]:
            trial = [*weights]
            trial[i] = w
            got = ndcg(base.with_params(replace(best_params, weights=tuple(trial))), states)
            if got > best:
                weights, best = trial, got
    params = replace(best_params, weights=tuple(weights))
    return fit_ranker(train, groups, params), {**params.as_dict(), "valid_ndcg@10": best}


def candidate_ids(values: Sequence[int]) -> list[str]:
    return [str(v) for v in values]
