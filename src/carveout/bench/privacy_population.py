"""The privacy bench's cell: a SYNTHETIC population calibrated on KuaiRec around the measured users.

Every synthetic user replays the watch ratios of a real KuaiRec user drawn by the seed (an
impression and a watch event per row, a like at watch_ratio >= 2.0, as the KuaiRec import does),
on a catalogue sized at KuaiRec's videos per user, made by authors at KuaiRec's share, with
KuaiRand's real durations and the real sample clips as media. Follow counts are drawn from
KuaiRec's follow_user_num; comments (which KuaiRec lacks) at an assumed rate. Every upload has
its automated moderation decision, as the upload path records one. Rows are written through
the same paths a load uses: users sealed under their own keys, comments sealed too."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from carveout.accounts import sealed_user_rows
from carveout.bench.privacy_calibration import ASSUMED_COMMENTS_PER_USER, Calibration
from carveout.cells import Cell
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.datasets.jurisdiction_mix import assign_jurisdictions
from carveout.datasets.kuairec_files import MEDIA_DIR, MEDIA_FILES, probe_media
from carveout.datasets.kuairec_rows import LIKED_RATIO
from carveout.events.stats import recompute_all
from carveout.storage import Vault, sha256_file

DAY_MS = 86_400_000
WINDOW_MS = 30 * DAY_MS  # events fall in the 30 days before now, as in the KuaiRec import
CHUNK_USERS = 1_000
CONSENT_VERSION = "2026-01"
PUBLISHED_FACTS = "no finding"  # what the upload path records for a clean video

Report = Callable[[str, float, float], None]


@dataclass(frozen=True)
class Clip:
    path: Path
    sha256: str
    size: int
    width: int
    height: int


@dataclass
class Population:
    user_ids: list[str]
    domiciles: list[str]
    video_ids: list[str]
    durations: np.ndarray
    clips: list[Clip]
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n


def read_clips(datasets: Path) -> list[Clip]:
    out = []
    for name in MEDIA_FILES:
        path = datasets / MEDIA_DIR / name
        sha, size = sha256_file(path)
        media = probe_media(path)
        out.append(Clip(path, sha, size, media.width, media.height))
    return out


def decision_row(video_id: str, domicile: str, creator: str, at: int) -> dict[str, Any]:
    """The automated decision the upload path records for a clean video."""
    return {
        "id": new_id(),
        "domicile": domicile,
        "subject_id": creator,
        "target_kind": "video",
        "target_id": video_id,
        "visibility": "published",
        "ground": "none",
        "rule": "",
        "category": "STATEMENT_CATEGORY_NONE",
        "territorial_scope": "[]",
        "automated_detection": True,
        "automated_decision": True,
        "source": "automated",
        "facts": PUBLISHED_FACTS,
        "signals": json.dumps({"synthetic": True}),
        "reviewer_id": None,
        "supersedes": None,
        "content_date": at,
        "created_at": at,
    }


def session_row(rng: np.random.Generator, user_id: str, domicile: str, now: int) -> dict[str, Any]:
    return {
        "id": new_id(),
        "domicile": domicile,
        "user_id": user_id,
        "token_hash": rng.bytes(32).hex(),
        "created_at": now,
        "expires_at": now + 30 * DAY_MS,
    }


def consent_rows(user_id: str, domicile: str, now: int) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id(),
            "domicile": domicile,
            "user_id": user_id,
            "purpose": purpose,
            "granted": True,
            "version": CONSENT_VERSION,
            "created_at": now,
        }
        for purpose in ("personalisation", "training")
    ]


def comment_rows(
    vault: Vault, key: bytes, user_id: str, domicile: str, video_ids: list[str], times: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Comments (bodies sealed under the author's key) and their comment events."""
    comments, events = [], []
    for k, (vid, at) in enumerate(zip(video_ids, times, strict=True)):
        cid = new_id()
        body = vault.seal_value(key, "comments", "body", user_id, f"synthetic comment {k}")
        comments.append(
            {
                "id": cid,
                "domicile": domicile,
                "user_id": user_id,
                "video_id": vid,
                "body": body,
                "status": "visible",
                "created_at": at,
            }
        )
        events.append(event_row(domicile, user_id, vid, "comment", None, at))
    return comments, events


def event_row(
    domicile: str, user_id: str, video_id: str, kind: str, watched_ms: int | None, at: int
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "domicile": domicile,
        "user_id": user_id,
        "video_id": video_id,
        "kind": kind,
        "watched_ms": watched_ms,
        "created_at": at,
    }


def follow_row(follower: str, followee: str, domicile: str, at: int) -> dict[str, Any]:
    return {
        "id": new_id(),
        "domicile": domicile,
        "follower_id": follower,
        "followee_id": followee,
        "created_at": at,
    }


def build_population(
    cell: Cell,
    cal: Calibration,
    clips: list[Clip],
    users: int,
    seed: int,
    report: Report,
) -> Population:
    """Write the synthetic population into the cell; video_stats recomputed at the end."""
    rng = np.random.default_rng([seed, 0x9B1])
    now = now_ms()
    user_ids = [new_id() for _ in range(users)]
    domiciles = assign_jurisdictions(users, seed)
    n_videos = max(round(users * cal.videos_per_user), 1)
    pop = Population(
        user_ids,
        domiciles,
        [new_id() for _ in range(n_videos)],
        rng.choice(cal.durations, n_videos),
        clips,
    )
    step = "population"
    report(step, 0, users + 1)
    _write_catalogue(cell, cal, pop, rng, now)
    report(step, 1, users + 1)
    per_user = cal.user_rows
    for start in range(0, users, CHUNK_USERS):
        stop = min(start + CHUNK_USERS, users)
        _write_users(cell, cal, pop, per_user, range(start, stop), rng, now)
        report(step, stop + 1, users + 1)
    recompute_all(cell.store, now_ms())
    cell.store.analyze()
    return pop


def _write_catalogue(
    cell: Cell, cal: Calibration, pop: Population, rng: np.random.Generator, now: int
) -> None:
    n = len(pop.video_ids)
    authors = np.flatnonzero(rng.random(len(pop.user_ids)) < cal.author_share)
    if authors.size == 0:
        authors = np.arange(len(pop.user_ids))
    creator = rng.choice(authors, n)
    clip = rng.integers(0, len(pop.clips), n)
    created = now - WINDOW_MS - rng.integers(0, 335 * DAY_MS, n)
    for c in pop.clips:
        cell.blobs.put_file(c.path)
    # One blob row per file and domicile; a cell that holds the clips already (KuaiRec's import
    # stores the same sample media, as under `bench backup --synthetic-users`) keeps its rows.
    blob_ids = _blob_ids(cell, [c.sha256 for c in pop.clips])
    new_blobs: list[dict[str, Any]] = []
    videos, decisions = [], []
    for i in range(n):
        owner, c = pop.user_ids[int(creator[i])], pop.clips[int(clip[i])]
        dom = pop.domiciles[int(creator[i])]
        blob_id = blob_ids.get((c.sha256, dom))
        if blob_id is None:
            blob_id = blob_ids[(c.sha256, dom)] = new_id()
            new_blobs.append(
                {
                    "id": blob_id,
                    "domicile": dom,
                    "sha256": c.sha256,
                    "size_bytes": c.size,
                    "content_type": "video/mp4",
                    "owner_id": owner,
                    "created_at": int(created[i]),
                }
            )
        videos.append(
            video_row(
                pop.video_ids[i], dom, owner, blob_id, c, int(pop.durations[i]), int(created[i])
            )
        )
        decisions.append(decision_row(pop.video_ids[i], dom, owner, int(created[i])))
    for table, rows in (
        ("blobs", new_blobs),
        ("videos", videos),
        ("moderation_decisions", decisions),
    ):
        cell.store.bulk_insert(table, rows)
        pop.add(table, len(rows))


def _blob_ids(cell: Cell, shas: list[str]) -> dict[tuple[str, str], str]:
    """The ids of the cell's blob rows of these files, by (sha256, domicile)."""
    table = TABLES["blobs"]
    stmt = sa.select(table.c.id, table.c.sha256, table.c.domicile).where(table.c.sha256.in_(shas))
    with cell.store.connect() as conn:
        return {(sha, dom): str(id_) for id_, sha, dom in conn.execute(stmt)}


def video_row(
    video_id: str, domicile: str, creator: str, blob_id: str, clip: Clip, duration: int, at: int
) -> dict[str, Any]:
    return {
        "id": video_id,
        "domicile": domicile,
        "creator_id": creator,
        "caption": "synthetic video",
        "hashtags": "[]",
        "category": "synthetic",
        "duration_ms": duration,
        "width": clip.width,
        "height": clip.height,
        "blob_id": blob_id,
        "status": "published",
        "external_ref": None,
        "created_at": at,
    }


def _write_users(
    cell: Cell,
    cal: Calibration,
    pop: Population,
    per_user: list[np.ndarray],
    chunk: range,
    rng: np.random.Generator,
    now: int,
) -> None:
    n_users, n_videos = len(pop.user_ids), len(pop.video_ids)
    plain = [
        {
            "id": pop.user_ids[i],
            "domicile": pop.domiciles[i],
            "handle": f"syn{i:07d}",
            "display_name": f"Synthetic user {i}",
            "email": f"syn{i:07d}@synthetic.invalid",
            "birth_year": int(rng.integers(1950, 2010)),
            "password_hash": "",  # synthetic accounts cannot log in
            "status": "active",
            "created_at": now - 400 * DAY_MS,
        }
        for i in chunk
    ]
    rows: dict[str, list[dict[str, Any]]] = {
        "users": sealed_user_rows(cell.vault, plain),
        "sessions": [],
        "consents": [],
        "events": [],
        "likes": [],
        "comments": [],
        "follows": [],
    }
    keys = cell.vault.keys.keys(pop.user_ids[i] for i in chunk)
    for i in chunk:
        uid, dom = pop.user_ids[i], pop.domiciles[i]
        rows["sessions"].append(session_row(rng, uid, dom, now))
        rows["consents"] += consent_rows(uid, dom, now)
        real = per_user[int(rng.integers(len(per_user)))]
        at = now - rng.integers(60_000, WINDOW_MS, len(real))
        liked: set[str] = set()
        for k, r in enumerate(real.tolist()):
            vi = int(cal.watch_videos[r]) % n_videos
            vid, ratio = pop.video_ids[vi], float(cal.watch_ratios[r])
            t = int(at[k])
            rows["events"].append(event_row(dom, uid, vid, "impression", None, t - 5_000))
            watched = round(ratio * int(pop.durations[vi]))
            rows["events"].append(event_row(dom, uid, vid, "watch", watched, t))
            if ratio >= LIKED_RATIO and vid not in liked:
                liked.add(vid)
                rows["events"].append(event_row(dom, uid, vid, "like", None, t + 1_000))
                rows["likes"].append(
                    {
                        "id": new_id(),
                        "domicile": dom,
                        "user_id": uid,
                        "video_id": vid,
                        "created_at": t + 1_000,
                    }
                )
        n_comments = int(rng.poisson(ASSUMED_COMMENTS_PER_USER))
        vids = [pop.video_ids[int(v)] for v in rng.integers(0, n_videos, n_comments)]
        times = [int(t) for t in now - rng.integers(60_000, WINDOW_MS, n_comments)]
        comments, events = comment_rows(cell.vault, keys[uid], uid, dom, vids, times)
        rows["comments"] += comments
        rows["events"] += events
        k = min(int(rng.choice(cal.follows)), n_users - 1)
        for j in rng.choice(n_users - 1, k, replace=False).tolist():
            followee = pop.user_ids[j if j < i else j + 1]  # never themselves
            rows["follows"].append(follow_row(uid, followee, dom, now - DAY_MS))
    for table, table_rows in rows.items():
        for start in range(0, len(table_rows), 5_000):
            cell.store.bulk_insert(table, table_rows[start : start + 5_000])
        pop.add(table, len(table_rows))
