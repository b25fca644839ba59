"""The cost of separating the data, in one number: NDCG@10 of J's users from a model trained on
J's data alone, against the model trained on everyone's (the global cell before a carve).

Same protocol as `bench recommend` (per-user seeded 60/23 split of KuaiRec's fully observed
matrix); users get the jurisdictions `carveout load kuairec` gives them (same seed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carveout.datasets.jurisdiction_mix import assign_jurisdictions
from carveout.datasets.kuairec_files import read_users
from carveout.recommend.metrics import evaluate, mean_ci
from carveout.recommend.ratings import read_ratings, split_per_user
from carveout.recommend.tuning import score_rows, tune
from carveout.recommend.video_groups import read_kuairec_groups


@dataclass
class SeparationResult:
    jurisdictions: tuple[str, ...]
    users_in_j: int
    users_total: int
    global_ndcg: list[float] = field(default_factory=list)
    carved_ndcg: list[float] = field(default_factory=list)

    @property
    def kept(self) -> float:
        """Share of the global model's NDCG@10 on J's users that the carved model keeps."""
        return float(np.mean(self.carved_ndcg) / np.mean(self.global_ndcg))

    def summary(self) -> dict[str, object]:
        g, g_ci = mean_ci(self.global_ndcg)
        c, c_ci = mean_ci(self.carved_ndcg)
        return {
            "jurisdictions": list(self.jurisdictions),
            "users_in_j": self.users_in_j,
            "users_total": self.users_total,
            "seeds": len(self.global_ndcg),
            "global_model_ndcg@10": {"mean": g, "ci95": g_ci, "per_seed": self.global_ndcg},
            "carved_model_ndcg@10": {"mean": c, "ci95": c_ci, "per_seed": self.carved_ndcg},
            "kept": self.kept,
        }


def separation_cost(
    datasets: Path, codes: tuple[str, ...], *, seeds: int = 3, load_seed: int = 7
) -> SeparationResult:
    kuairec = datasets / "kuairec"
    ratings = read_ratings(kuairec / "watch_ratio.csv")
    users = read_users(kuairec / "user_features.csv")
    country = dict(
        zip(users.ids.tolist(), assign_jurisdictions(users.ids.size, load_seed), strict=True)
    )
    groups = {str(k): v for k, v in read_kuairec_groups(datasets).items()}
    in_j_user = np.array([country.get(int(u)) in codes for u in ratings.users.tolist()])
    result = SeparationResult(
        jurisdictions=codes,
        users_in_j=int(np.unique(ratings.users[in_j_user]).size),
        users_total=int(np.unique(ratings.users).size),
    )
    for seed in range(seeds):
        train_rows, test_rows = split_per_user(ratings, seed)
        train, test = ratings.take(train_rows), ratings.take(test_rows)
        j_train = train.take(np.flatnonzero(in_j_user[train_rows]))
        j_test = test.take(np.flatnonzero(in_j_user[test_rows]))
        everyone, _ = tune(train, groups, seed)
        carved, _ = tune(j_train, groups, seed)
        result.global_ndcg.append(
            evaluate(j_test.users, j_test.ratios, score_rows(everyone, train, j_test)).ndcg
        )
        result.carved_ndcg.append(
            evaluate(j_test.users, j_test.ratios, score_rows(carved, j_train, j_test)).ndcg
        )
    return result
