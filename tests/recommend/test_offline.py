"""The offline protocol: split, metrics, the ranker's online update, and the bench end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from carveout.bench.recommend import METHODS, run_recommend_bench
from carveout.core import InvalidInput
from carveout.recommend.metrics import evaluate, mean_ci
from carveout.recommend.ranker import (
    Ranker,
    RankerParams,
    UserState,
    standardised_per_user,
    states_from_rows,
)
from carveout.recommend.ratings import Ratings, read_ratings, split_per_user


def _synthetic(n_users: int, n_videos: int, per_user: int, seed: int, first_user: int = 0) -> str:
    """A small watch-ratio file: a video effect plus a per-user liking of one category."""
    gen = np.random.default_rng(seed)
    quality = gen.lognormal(0, 0.5, n_videos)
    lines = ["user_id,video_id,watch_ratio"]
    for u in range(first_user, first_user + n_users):
        fav = u % 3
        for v in gen.choice(n_videos, per_user, replace=False):
            boost = 2.0 if v % 3 == fav else 1.0
            lines.append(f"{u},{v},{quality[v] * boost * gen.lognormal(0, 0.3):.4f}")
    return "\n".join(lines) + "\n"


def _datasets(tmp: Path, n_videos: int) -> Path:
    root = tmp / "datasets" / "kuairec"
    root.mkdir(parents=True)
    cats = [
        "video_id,caption,first_level_category_id,second_level_category_id,third_level_category_id"
    ]
    cats += [f"{v},x,{v % 3},-124,-124" for v in range(n_videos)]
    (root / "kuairec_caption_category.csv").write_text("\n".join(cats) + "\n")
    tags = ["video_id,feat"] + [f'{v},"[{v % 5}]"' for v in range(n_videos)]
    (root / "item_categories.csv").write_text("\n".join(tags) + "\n")
    return tmp / "datasets"


def test_split_is_per_user_seeded_and_60_23() -> None:
    users = np.repeat(np.arange(4), 83)
    r = Ratings(users, np.tile(np.arange(83), 4), np.ones(332))
    train, test = split_per_user(r, seed=3)
    assert np.bincount(r.users[train]).tolist() == [60] * 4
    assert np.bincount(r.users[test]).tolist() == [23] * 4
    again, _ = split_per_user(r, seed=3)
    other, _ = split_per_user(r, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_metrics_perfect_and_reversed_order() -> None:
    users = np.zeros(12, dtype=np.int64)
    ratios = np.array([3.0, 2.5, *[0.1 * i for i in range(10)]])
    perfect = evaluate(users, ratios, ratios)
    assert perfect.ndcg == pytest.approx(1.0) and perfect.recall == 1.0
    worst = evaluate(users, ratios, -ratios)
    assert worst.ndcg < 0.5 and worst.recall == 0.0
    assert mean_ci([0.8, 0.8, 0.8])[1] == pytest.approx(0.0, abs=1e-12)


def test_observe_is_the_online_update_and_moves_scores() -> None:
    groups = {"a": {"c1": ("c1:x",)}, "b": {"c1": ("c1:x",)}, "c": {"c1": ("c1:y",)}}
    ratios = np.array([1.0, 1.0, 1.0, 1.0])
    params = RankerParams(weights=(1.0, 0.0, 0.0, 0.0))
    ranker = Ranker.fit(["a", "b", "c", "c"], ratios, groups, params)
    state = UserState()
    before = ranker.score(state, ["b", "c"])
    ranker.observe(state, "a", 2.0)
    after = ranker.score(state, ["b", "c"])
    assert after[0] > before[0] and after[1] == before[1]
    assert state.watched == {"a"}
    bulk = states_from_rows(ranker, ["u"], ["a"], [2.0])["u"]
    assert bulk.residual == state.residual
    assert Ranker.from_json(ranker.to_json()).score(state, ["b"]) == pytest.approx(after[0])


def test_per_user_standardising_keeps_each_users_order_on_the_global_scale() -> None:
    users = np.array(["a"] * 4 + ["b"] * 4 + ["c"])
    values = np.array([1.0, 1.2, 1.4, 1.6, 0.2, 0.3, 0.4, 0.5, 0.9])
    out = standardised_per_user(users, values, pseudo=0.0)
    # Without pseudo-rows each user's values become the same z-scores, mapped to the global
    # mean and spread: a (1.0..1.6) and b (0.2..0.5) differ only by their scale.
    np.testing.assert_allclose(out[:4], out[4:8])
    assert np.all(np.diff(out[:4]) > 0)
    assert out[8] == pytest.approx(values.mean())  # one row: its own mean, z = 0
    # Pseudo-rows pull a user with few rows towards the global mean and spread.
    shrunk = standardised_per_user(users, values, pseudo=5.0)
    assert abs(shrunk[8] - values.mean()) < abs(values[8] - values.mean())
    assert shrunk[8] != pytest.approx(values.mean())
    same = np.full(5, 1.5)
    np.testing.assert_array_equal(standardised_per_user(np.arange(5), same), same)
    assert standardised_per_user(np.array([], dtype=str), np.array([])).size == 0


def test_per_user_prior_judges_a_video_against_its_viewers_habits() -> None:
    # "heavy" watches everything long, "light" everything short: video x got heavy's usual
    # ratio, y light's best. The raw prior prefers x (it got the heavy viewer); per user, y.
    users = ["heavy"] * 21 + ["light"] * 21
    videos = ["x", *(f"h{i}" for i in range(20)), "y", *(f"l{i}" for i in range(20))]
    ratios = np.array([1.5, *[1.4, 1.6] * 10, 0.9, *[0.3, 0.4] * 10])
    raw = Ranker.fit(videos, ratios, {}, RankerParams(shrink=1.0))
    per_user = Ranker.fit(videos, ratios, {}, RankerParams(shrink=1.0, per_user=True), users)
    assert raw.prior("x") > raw.prior("y")
    assert per_user.prior("y") > per_user.prior("x")
    again = Ranker.from_json(per_user.to_json())
    assert again.params.per_user and again.prior("y") == per_user.prior("y")
    old = per_user.to_json()["params"]
    del old["per_user"]  # a ranker saved before the option existed
    assert RankerParams.from_dict(old).per_user is False
    with pytest.raises(ValueError, match="user"):
        Ranker.fit(videos, ratios, {}, RankerParams(per_user=True))


def test_bad_ratings_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        read_ratings(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("user_id,video_id\n1,2\n")
    with pytest.raises(InvalidInput, match="watch_ratio"):
        read_ratings(tmp_path / "bad.csv")


def test_bench_runs_every_method_with_fold_in(tmp_path: Path) -> None:
    data, fresh = tmp_path / "data.csv", tmp_path / "fresh.csv"
    data.write_text(_synthetic(60, 90, 40, seed=1))
    fresh.write_text(_synthetic(20, 90, 40, seed=2, first_user=1000))
    result = run_recommend_bench(data, _datasets(tmp_path, 90), seeds=2, foldin=fresh)
    out = result.as_json()
    json.dumps(out)
    assert set(out["per_seed"]) == set(METHODS)
    assert all(len(v) == 2 for v in out["per_seed"].values())
    summary = out["summary"]
    assert summary["ours"]["ndcg@10"]["mean"] > summary["random"]["ndcg@10"]["mean"]
    assert set(out["foldin_summary"]) == {"popularity", "shrunk log mean", "ours"}
