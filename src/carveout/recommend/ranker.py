"""Our ranker: a robust per-video prior plus the user's residual affinity for the video's groups.

The prior is each video's shrunk mean of the watch ratio capped at `cap` (a capped mean resists
the few looped views that make a plain mean noisy; on KuaiRec it ranks better than the mean of
log ratios). With `per_user`, each training row enters the prior as the user's capped ratio
standardised by that user's own mean and spread (both shrunk towards the global ones) and put
back on the global scale: the prior then says how a video does against each viewer's habits,
not how heavy the viewers it happened to get are. The personal part is the user's mean
residual (capped ratio minus the prior) over videos sharing a group key (category levels, tags),
shrunk by its count and weighted per type.
The user's state is a few sums, so one event updates it in O(keys) and fold-in is free."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from carveout.recommend.video_groups import GROUP_TYPES

RECENT = 50  # watches kept per user for the candidate sources (embedding centroid, co-watch)
USER_PSEUDO_ROWS = 5.0  # rows at the global mean and spread in each user's own (`per_user`)

Groups = Mapping[str, Mapping[str, Sequence[str]]]  # video -> type -> keys
NO_GROUPS: Mapping[str, Sequence[str]] = {}


@dataclass(frozen=True)
class RankerParams:
    cap: float = 2.0  # watch ratios above this count as this much
    shrink: float = 2.0  # pseudo-views at the global mean in each video's prior
    affinity_shrink: float = 5.0  # pseudo-views at zero residual in each group affinity
    weights: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # per GROUP_TYPES entry
    per_user: bool = False  # priors from rows standardised per user (see the module's doc)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cap": self.cap,
            "shrink": self.shrink,
            "affinity_shrink": self.affinity_shrink,
            "weights": list(self.weights),
            "per_user": self.per_user,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RankerParams:
        return cls(
            float(raw["cap"]),
            float(raw["shrink"]),
            float(raw["affinity_shrink"]),
            tuple(float(w) for w in raw["weights"]),
            bool(raw.get("per_user", False)),  # rankers saved before it existed: False
        )


@dataclass
class UserState:
    """What the ranker knows of one user: watched videos and residual sums per group key."""

    watched: set[str] = field(default_factory=set)
    residual: dict[str, float] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    events: int = 0
    recent: deque[tuple[str, float]] = field(default_factory=lambda: deque(maxlen=RECENT))


@dataclass
class Ranker:
    params: RankerParams
    global_mean: float
    video_sum: dict[str, float]  # sum of capped ratios per video
    video_n: dict[str, int]
    groups: dict[str, dict[str, tuple[str, ...]]]

    @classmethod
    def fit(
        cls,
        videos: Sequence[str],
        ratios: np.ndarray,
        groups: Groups,
        params: RankerParams | None = None,
        users: Sequence[str] | np.ndarray | None = None,
    ) -> Ranker:
        """`users` (each row's viewer) is needed when `params.per_user`."""
        params = params or RankerParams()
        capped = np.minimum(ratios, params.cap)
        if params.per_user:
            if users is None:
                raise ValueError("per_user priors need each row's user")
            capped = standardised_per_user(np.asarray(users), capped)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for video, value in zip(videos, capped.tolist(), strict=True):
            sums[video] = sums.get(video, 0.0) + value
            counts[video] = counts.get(video, 0) + 1
        known = {v: {t: tuple(k) for t, k in groups.get(v, {}).items()} for v in sums}
        mean = float(capped.mean()) if capped.size else 1.0
        return cls(params, mean, sums, counts, known)

    def with_params(self, params: RankerParams) -> Ranker:
        """Same data, other weights (the cap, shrink and per_user need a refit; weights do not)."""
        return Ranker(params, self.global_mean, self.video_sum, self.video_n, self.groups)

    def prior(self, video: str) -> float:
        k = self.params.shrink
        return (self.video_sum.get(video, 0.0) + k * self.global_mean) / (
            self.video_n.get(video, 0) + k
        )

    def keys(self, video: str, groups: Groups | None = None) -> Mapping[str, Sequence[str]]:
        if groups is not None and video in groups:
            return groups[video]
        return self.groups.get(video, NO_GROUPS)

    def observe(
        self, state: UserState, video: str, ratio: float, groups: Groups | None = None
    ) -> None:
        """Fold one watch into the user's state (the online update; fold-in uses it too)."""
        state.watched.add(video)
        state.events += 1
        state.recent.append((video, ratio))
        residual = min(ratio, self.params.cap) - self.prior(video)
        for keys in self.keys(video, groups).values():
            for key in keys:
                state.residual[key] = state.residual.get(key, 0.0) + residual
                state.count[key] = state.count.get(key, 0) + 1

    def score(
        self, state: UserState | None, videos: Sequence[str], groups: Groups | None = None
    ) -> np.ndarray:
        """Predicted capped watch ratio of each video for this user (no state: the prior)."""
        k, mean = self.params.shrink, self.global_mean
        sums, counts = self.video_sum, self.video_n
        out = np.fromiter(
            ((sums.get(v, 0.0) + k * mean) / (counts.get(v, 0) + k) for v in videos),
            np.float64,
            len(videos),
        )
        if state is None or not state.residual or not any(self.params.weights):
            return out
        # Many candidates share their group keys (a category, a hashtag set): each distinct
        # set is worked out once per call. The cache holds the keys object so that its id
        # cannot be reused by another while the cache lives.
        seen: dict[int, tuple[Mapping[str, Sequence[str]], list[float]]] = {}
        for i, video in enumerate(videos):
            keys = self.keys(video, groups)
            hit = seen.get(id(keys))
            if hit is None:
                hit = seen[id(keys)] = (keys, self.affinity_terms(state, keys))
            for term in hit[1]:
                out[i] += term
        return out

    def affinity_terms(self, state: UserState, keys: Mapping[str, Sequence[str]]) -> list[float]:
        """The weighted affinity of each group type that the keys have, in GROUP_TYPES order."""
        k = self.params.affinity_shrink
        terms = []
        for weight, kind in zip(self.params.weights, GROUP_TYPES, strict=True):
            values = keys.get(kind, ())
            if not weight or not values:
                continue
            aff = sum(
                state.residual.get(key, 0.0) / (state.count.get(key, 0) + k) for key in values
            )
            terms.append(weight * aff / len(values))
        return terms

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params.as_dict(),
            "global_mean": self.global_mean,
            "videos": {
                v: [self.video_sum[v], self.video_n[v], self.groups.get(v, {})]
                for v in self.video_sum
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Ranker:
        videos: Mapping[str, Any] = raw["videos"]
        return cls(
            RankerParams.from_dict(raw["params"]),
            float(raw["global_mean"]),
            {v: float(e[0]) for v, e in videos.items()},
            {v: int(e[1]) for v, e in videos.items()},
            {
                v: {t: tuple(str(k) for k in ks) for t, ks in e[2].items()}
                for v, e in videos.items()
            },
        )


def standardised_per_user(
    users: np.ndarray, values: np.ndarray, pseudo: float = USER_PSEUDO_ROWS
) -> np.ndarray:
    """Each value standardised by its user's mean and spread, then put back on the global scale
    (global mean + global std x the user's z-score). A user's mean and variance are shrunk
    towards the global ones by `pseudo` rows, so one or two watches say little."""
    mean, var = (float(values.mean()), float(values.var())) if values.size else (0.0, 0.0)
    if var <= 0:  # no rows, or every value equal: nothing to standardise
        return values.copy()
    _keys, user = np.unique(users, return_inverse=True)
    n = np.bincount(user).astype(np.float64)
    u_mean = (np.bincount(user, values) + pseudo * mean) / (n + pseudo)
    dev = values - u_mean[user]
    u_var = (np.bincount(user, dev * dev) + pseudo * var) / (n + pseudo)
    out: np.ndarray = mean + np.sqrt(var) * dev / np.sqrt(np.maximum(u_var[user], 1e-12))
    return out


def states_from_rows(
    ranker: Ranker, users: Iterable[str], videos: Iterable[str], ratios: Iterable[float]
) -> dict[str, UserState]:
    """Each user's state from their rows, one observe() per row: the online path, in bulk."""
    states: dict[str, UserState] = {}
    for user, video, ratio in zip(users, videos, ratios, strict=True):
        state = states.get(user)
        if state is None:  # not setdefault: it would build a UserState for every row
            state = states[user] = UserState()
        ranker.observe(state, video, float(ratio))
    return states
