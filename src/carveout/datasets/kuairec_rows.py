"""From KuaiRec's files to carveout rows: the seeded rules that fill what the dataset lacks.

KuaiRec has real users, videos (captions, hashtags, categories) and watch ratios, but no
countries, authors, durations, media or times. Each gap is filled by one documented rule
(docs/datasets.md) drawing from its own seeded stream, so a load is reproducible except for
row ids (UUIDv7) and the reference day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from carveout.core import InvalidInput, new_id
from carveout.datasets.jurisdiction_mix import assign_jurisdictions
from carveout.datasets.kuairec_files import Media, Users, VideoMeta, Watches
from carveout.datasets.seeding import Stream, rng

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
WATCH_WINDOW_DAYS = 30  # watch events fall in the 30 days before the reference time
UPLOAD_SPREAD_DAYS = 335  # videos were uploaded within the year before the watch window
LIKED_RATIO = 2.0  # KuaiRec's usual "liked" cut on watch_ratio

# Age of users in years: (youngest, oldest, share in per mille). A short-video audience.
AGE_BANDS: tuple[tuple[int, int, int], ...] = (
    (13, 17, 80),
    (18, 24, 300),
    (25, 34, 300),
    (35, 44, 170),
    (45, 54, 100),
    (55, 70, 50),
)

TABLE_ORDER = ("users", "blobs", "videos", "events", "likes")


@dataclass(frozen=True)
class MediaFile:
    media: Media
    sha256: str
    size: int


@dataclass
class Plan:
    """Every row the import writes, per table in insert order, each carrying its domicile."""

    reference_ms: int
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blob_files: dict[str, Path] = field(default_factory=dict)  # sha256 -> source file


def reference_day(now_ms: int) -> int:
    """`now` rounded down to midnight UTC: every generated time lies before it."""
    return now_ms // DAY_MS * DAY_MS


def _birth_years(n: int, seed: int, year: int) -> np.ndarray:
    gen = rng(seed, Stream.BIRTH_YEAR)
    shares = np.array([b[2] for b in AGE_BANDS], dtype=np.float64)
    band = gen.choice(len(AGE_BANDS), size=n, p=shares / shares.sum())
    lo = np.array([b[0] for b in AGE_BANDS])[band]
    hi = np.array([b[1] for b in AGE_BANDS])[band]
    ages: np.ndarray = lo + np.floor(gen.random(n) * (hi - lo + 1)).astype(np.int64)
    return np.int64(year) - ages


def _index(ids: np.ndarray, wanted: np.ndarray, what: str, source: str) -> np.ndarray:
    """Positions of `wanted` in the ascending `ids`; unknown ids are an error."""
    pos = np.searchsorted(ids, wanted)
    pos = np.minimum(pos, len(ids) - 1)
    bad = ids[pos] != wanted
    if bad.any():
        sample = ", ".join(str(x) for x in np.unique(wanted[bad])[:5])
        raise InvalidInput(f"{source}: {int(bad.sum())} rows name an unknown {what} ({sample})")
    return pos


def build_plan(
    users: Users,
    videos: list[VideoMeta],
    watches: Watches,
    durations: np.ndarray,
    media: list[MediaFile],
    *,
    seed: int,
    reference_ms: int,
    watch_source: str = "watch_ratio.csv",
) -> Plan:
    if len(users.ids) == 0 or not videos or not media or durations.size == 0:
        raise InvalidInput("the KuaiRec import needs users, videos, durations and media files")
    plan = Plan(reference_ms=reference_ms)
    n_users, n_videos = len(users.ids), len(videos)
    year = datetime.fromtimestamp(reference_ms / 1000, UTC).year

    # Users: a country from the jurisdiction mix; created `register_days` before the reference.
    domicile = np.array(assign_jurisdictions(n_users, seed), dtype=object)
    birth_year = _birth_years(n_users, seed, year)
    user_created = (
        reference_ms
        - users.register_days * DAY_MS
        - rng(seed, Stream.USER_CREATED).integers(HOUR_MS, DAY_MS, size=n_users)
    )
    user_ids = [new_id() for _ in range(n_users)]
    plan.rows["users"] = [
        {
            "id": user_ids[i],
            "domicile": str(domicile[i]),
            "handle": f"kr{uid}",
            "display_name": f"KuaiRec user {uid}",
            "email": f"kr{uid}@kuairec.invalid",
            "birth_year": int(birth_year[i]),
            "password_hash": "",  # imported accounts cannot log in
            "status": "active",
            "created_at": int(user_created[i]),
        }
        for i, uid in enumerate(users.ids.tolist())
    ]

    # Videos: a creator among KuaiRec's video authors, a real KuaiRand duration, a sample clip.
    pool = np.flatnonzero(users.is_author)
    if pool.size == 0:
        pool = np.arange(n_users)
    creator = pool[rng(seed, Stream.CREATOR).integers(0, pool.size, size=n_videos)]
    duration = rng(seed, Stream.DURATION).choice(durations, size=n_videos)
    clip = rng(seed, Stream.BLOB).integers(0, len(media), size=n_videos)
    uploaded = (
        reference_ms
        - WATCH_WINDOW_DAYS * DAY_MS
        - rng(seed, Stream.VIDEO_CREATED).integers(0, UPLOAD_SPREAD_DAYS * DAY_MS, size=n_videos)
    )
    video_created = np.maximum(uploaded, user_created[creator] + MINUTE_MS)
    video_dom = domicile[creator]

    # One blobs row per (file, domicile); its owner is the first creator to upload it there.
    blob_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for i in sorted(range(n_videos), key=lambda k: (int(video_created[k]), videos[k].video_id)):
        file = media[int(clip[i])]
        key = (file.sha256, str(video_dom[i]))
        if key not in blob_rows:
            blob_rows[key] = {
                "id": new_id(),
                "domicile": key[1],
                "sha256": file.sha256,
                "size_bytes": file.size,
                "content_type": "video/mp4",
                "owner_id": user_ids[int(creator[i])],
                "created_at": int(video_created[i]),
            }
            plan.blob_files[file.sha256] = file.media.path
    plan.rows["blobs"] = list(blob_rows.values())

    video_ids = [new_id() for _ in range(n_videos)]
    plan.rows["videos"] = [
        {
            "id": video_ids[i],
            "domicile": str(video_dom[i]),
            "creator_id": user_ids[int(creator[i])],
            "caption": v.caption,
            "hashtags": json.dumps(v.hashtags, ensure_ascii=False),
            "category": v.category,
            "duration_ms": int(duration[i]),
            "width": media[int(clip[i])].media.width,
            "height": media[int(clip[i])].media.height,
            "blob_id": blob_rows[(media[int(clip[i])].sha256, str(video_dom[i]))]["id"],
            "status": "published",
            "external_ref": f"kuairec:{v.video_id}",
            "created_at": int(video_created[i]),
        }
        for i, v in enumerate(videos)
    ]

    actors = _Actors(user_ids, domicile, user_created, users.ids)
    targets = _Targets(video_ids, video_created, duration, np.array([v.video_id for v in videos]))
    plan.rows["events"], plan.rows["likes"] = _watch_rows(
        watches, actors, targets, seed=seed, reference_ms=reference_ms, source=watch_source
    )
    return plan


@dataclass(frozen=True)
class _Actors:
    ids: list[str]
    domicile: np.ndarray
    created: np.ndarray
    source_ids: np.ndarray  # KuaiRec user_id, ascending


@dataclass(frozen=True)
class _Targets:
    ids: list[str]
    created: np.ndarray
    duration: np.ndarray
    source_ids: np.ndarray  # KuaiRec video_id, ascending


def _watch_rows(
    watches: Watches,
    actors: _Actors,
    targets: _Targets,
    *,
    seed: int,
    reference_ms: int,
    source: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each watch_ratio row: an impression, a watch, and a like (event and row) when liked."""
    u = _index(actors.source_ids, watches.user_ids, "user_id", source)
    v = _index(targets.source_ids, watches.video_ids, "video_id", source)
    n = len(u)
    watched = np.rint(watches.ratios * targets.duration[v]).astype(np.int64)
    # Uniform over the window, but never before the user joined or the video was uploaded.
    lo = (
        np.maximum.reduce(
            [
                np.full(n, reference_ms - WATCH_WINDOW_DAYS * DAY_MS, dtype=np.int64),
                actors.created[u],
                targets.created[v],
            ]
        )
        + MINUTE_MS
    )
    hi = reference_ms - MINUTE_MS
    at = lo + np.floor(rng(seed, Stream.WATCH_TIME).random(n) * (hi - lo)).astype(np.int64)
    seen = at - rng(seed, Stream.IMPRESSION_LEAD).integers(1_000, 10_001, size=n)
    liked_at = at + rng(seed, Stream.LIKE_DELAY).integers(500, 3_001, size=n)
    liked = watches.ratios >= LIKED_RATIO

    events: list[dict[str, Any]] = []
    likes: list[dict[str, Any]] = []
    for k, (ui, vi) in enumerate(zip(u.tolist(), v.tolist(), strict=True)):
        base = {
            "domicile": str(actors.domicile[ui]),
            "user_id": actors.ids[ui],
            "video_id": targets.ids[vi],
        }
        events.append(
            {
                "id": new_id(),
                **base,
                "kind": "impression",
                "watched_ms": None,
                "created_at": int(seen[k]),
            }
        )
        events.append(
            {
                "id": new_id(),
                **base,
                "kind": "watch",
                "watched_ms": int(watched[k]),
                "created_at": int(at[k]),
            }
        )
        if liked[k]:
            when = int(liked_at[k])
            events.append(
                {"id": new_id(), **base, "kind": "like", "watched_ms": None, "created_at": when}
            )
            likes.append({"id": new_id(), **base, "created_at": when})
    return events, likes
