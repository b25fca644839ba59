"""The row-based candidate pool serves exactly what checking and scoring each id would."""

from __future__ import annotations

import sqlalchemy as sa
from world import World

from carveout.accounts import User
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend import candidates, for_you, service, train_cell
from carveout.recommend.cell_recommender import CellRecommender
from carveout.recommend.ranker import RankerParams
from carveout.recommend.rerank import Candidate, interleave


def per_id(rec: CellRecommender, user: User, n: int, share: float, now: int) -> list[Candidate]:
    """The feed as it was computed id by id: every candidate checked, scored and sorted."""
    assert rec.ranker is not None
    state, cat = rec.state(user), rec.cat()
    viewer = rec.viewer(user, cat)
    found = candidates.generate(rec.model, cat, state, viewer)
    fresh_ids = candidates.fresh(rec.ranker, cat, state, viewer, now, int(n * share) + 1)
    for vid in fresh_ids:
        found.pop(vid, None)
    ids = list(found)
    groups = {v: cat.groups(v) for v in ids + fresh_ids}

    def candidate(vid: str, source: str, score: float) -> Candidate:
        info = cat.videos[vid]
        return Candidate(vid, info.creator_id, source, score, info.category)

    scores = rec.ranker.score(state, ids, groups).tolist()
    ranked = sorted(
        (candidate(v, found[v], s) for v, s in zip(ids, scores, strict=True)),
        key=lambda c: (-c.score, c.video_id),
    )
    fresh_scores = rec.ranker.score(state, fresh_ids, groups).tolist()
    fresh = [candidate(v, "explore", s) for v, s in zip(fresh_ids, fresh_scores, strict=True)]
    return interleave(ranked, fresh, share, n)


def test_row_pool_equals_the_per_id_path(trained_world: World) -> None:
    world = trained_world
    train_cell(world.cell)
    creator, newcomer = world.users[0], world.user("US")
    fresh = world.video(newcomer, "news", ("t9",))  # outside the model: explored or followed
    restricted, rejected = world.videos[3], world.videos[5]  # both known to the model
    with world.cell.store.begin() as conn:
        videos = TABLES["videos"]
        conn.execute(sa.update(videos).where(videos.c.id == rejected).values(status="rejected"))
        for follower in world.users[2:8]:
            for followee in (creator, newcomer):
                conn.execute(
                    sa.insert(TABLES["follows"]),
                    [
                        {
                            "id": new_id(),
                            "domicile": follower.domicile,
                            "follower_id": follower.id,
                            "followee_id": followee.id,
                            "created_at": now_ms(),
                        }
                    ],
                )
        conn.execute(
            sa.insert(TABLES["video_restrictions"]),
            [
                {
                    "id": new_id(),
                    "domicile": "US",
                    "video_id": restricted,
                    "jurisdiction": "CA",
                    "reason": "test",
                    "created_at": now_ms(),
                }
            ],
        )
    viewers = [*world.users[2:], world.user("CA")]  # with and without history
    for_you(world.cell, viewers[0], None, 5)  # loads the model and the catalogue
    rec = service.recommender(world.cell)
    assert rec.ranker is not None and rec.model is not None
    sources: set[str] = set()
    for weights in ((0.0, 0.0, 0.0, 0.0), (0.25, 0.0, 0.0, 0.25), (0.3, 0.1, 0.0, 0.7)):
        rec.ranker = rec.ranker.with_params(RankerParams(2.0, 5.0, 5.0, weights))
        for user in viewers:
            for n in (5, 11):
                now = now_ms()
                got = rec.rank(user, n, 0.1, now)
                assert got == per_id(rec, user, n, 0.1, now), (weights, user.id, n)
                sources |= {c.source for c in got}
                assert rejected not in {c.video_id for c in got}
                if user.domicile == "CA":
                    assert restricted not in {c.video_id for c in got}
    assert "following" in sources and sources & {"cowatch", "embedding"}
    assert fresh in {c.video_id for u in viewers for c in rec.rank(u, 11, 0.1, now_ms())}
