"""The measured users: signed up through the API, then given a profile's worth of data.

Sign-up goes through `POST /v1/users` (the personal fields enter by the path users take); the
rest of their history is written into the cell directly — events with their video_stats
counters in one transaction, as ingestion does; comments sealed under their key; uploads as
real media files (a sample clip plus a unique trailer, so each upload is its own file)."""

from __future__ import annotations

import io
import string
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from carveout.bench.api import BenchError
from carveout.bench.privacy_calibration import Calibration, Profile
from carveout.bench.privacy_population import (
    DAY_MS,
    WINDOW_MS,
    Population,
    comment_rows,
    consent_rows,
    decision_row,
    event_row,
    follow_row,
    video_row,
)
from carveout.cells import Cell
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.events.stats import apply_deltas, deltas, zero_row
from carveout.privacy import subject_tables

PASSWORD = "privacy bench password 1234"  # noqa: S105 - throwaway accounts in a temp deployment
COUNTRIES = ("CA", "GB", "US", "AU", "DE", "BR")
TOKEN_CHARS = string.ascii_lowercase + string.digits
# Every subject's strings share these parts (a scan for many subjects looks for them first).
HANDLE_STEM, NAME_STEM, EMAIL_STEM = "pv_subject_", "Privacy Subject ", ".subject@example.org"
STEMS = (HANDLE_STEM, NAME_STEM, EMAIL_STEM)


@dataclass
class Subject:
    """A measured user: who they are (the strings the scan looks for) and what they hold."""

    kind: str
    user_id: str
    domicile: str
    token: str
    handle: str
    display_name: str
    email: str
    blob_shas: list[str] = field(default_factory=list)

    @property
    def needles(self) -> list[str]:
        return [self.email, self.handle, self.display_name]


def sign_up(client: httpx.Client, rng: np.random.Generator, kind: str) -> Subject:
    tag = "".join(TOKEN_CHARS[int(i)] for i in rng.integers(0, len(TOKEN_CHARS), 12))
    body: dict[str, str | int] = {
        "handle": f"{HANDLE_STEM}{tag}",
        "display_name": f"{NAME_STEM}{tag.upper()}",
        "email": f"{tag}{EMAIL_STEM}",
        "password": PASSWORD,
        "birth_year": int(rng.integers(1960, 2005)),
        "country": COUNTRIES[int(rng.integers(len(COUNTRIES)))],
    }
    r = client.post("/v1/users", json=body)
    if r.status_code != 201:
        raise BenchError(f"sign-up failed: HTTP {r.status_code} {r.text[:300]}")
    out = r.json()
    return Subject(
        kind,
        str(out["user"]["id"]),
        str(body["country"]),
        str(out["token"]),
        str(body["handle"]),
        str(body["display_name"]),
        str(body["email"]),
    )


def give_history(
    cell: Cell,
    cal: Calibration,
    pop: Population,
    subject: Subject,
    profile: Profile,
    rng: np.random.Generator,
) -> None:
    """Write the profile's rows for the subject (their sign-up session already exists)."""
    uid, dom, now = subject.user_id, subject.domicile, now_ms()
    n_videos = len(pop.video_ids)
    if profile.likes > n_videos or max(profile.follows, profile.fans) > len(pop.user_ids):
        raise BenchError(
            f"the population ({len(pop.user_ids)} users, {n_videos} videos) is too small for "
            f"the {profile.name} profile; raise --population"
        )
    events: list[dict[str, Any]] = []
    ratios = rng.choice(cal.watch_ratios, profile.watches)
    watched = rng.integers(0, n_videos, profile.watches)
    at = now - rng.integers(60_000, WINDOW_MS, profile.watches)
    for vi, ratio, t in zip(watched.tolist(), ratios.tolist(), at.tolist(), strict=True):
        vid = pop.video_ids[vi]
        events.append(event_row(dom, uid, vid, "impression", None, t - 5_000))
        ms = round(ratio * int(pop.durations[vi]))
        events.append(event_row(dom, uid, vid, "watch", ms, t))
    likes = []
    for vi in rng.choice(n_videos, profile.likes, replace=False).tolist():
        vid = pop.video_ids[vi]
        likes.append(
            {"id": new_id(), "domicile": dom, "user_id": uid, "video_id": vid, "created_at": now}
        )
        events.append(event_row(dom, uid, vid, "like", None, now))
    key = cell.vault.keys.keys([uid])[uid]
    vids = [pop.video_ids[int(v)] for v in rng.integers(0, n_videos, profile.comments)]
    times = [int(t) for t in now - rng.integers(60_000, WINDOW_MS, profile.comments)]
    comments, comment_events = comment_rows(cell.vault, key, uid, dom, vids, times)
    events += comment_events
    follows = [
        follow_row(uid, pop.user_ids[j], dom, now - DAY_MS)
        for j in rng.choice(len(pop.user_ids), profile.follows, replace=False).tolist()
    ]
    follows += [
        follow_row(pop.user_ids[j], uid, pop.domiciles[j], now - DAY_MS)
        for j in rng.choice(len(pop.user_ids), profile.fans, replace=False).tolist()
    ]
    blobs, videos, decisions, stats = _uploads(cell, pop, subject, profile, rng, now)
    durations = dict(zip(pop.video_ids, (int(d) for d in pop.durations), strict=True))
    video_dom = _video_domiciles(cell, {e["video_id"] for e in events})
    with cell.store.begin() as conn:
        for table, rows in (
            ("blobs", blobs),
            ("videos", videos),
            ("video_stats", stats),
            ("moderation_decisions", decisions),
            ("likes", likes),
            ("comments", comments),
            ("follows", follows),
            ("consents", consent_rows(uid, dom, now)[: profile.consents]),
            ("events", events),
        ):
            if rows:
                conn.execute(sa.insert(TABLES[table]), rows)
        # The counters count these events, as ingestion would have made them.
        apply_deltas(conn, deltas(events, durations), video_dom, now)


def _uploads(
    cell: Cell,
    pop: Population,
    subject: Subject,
    profile: Profile,
    rng: np.random.Generator,
    now: int,
) -> tuple[list[dict[str, Any]], ...]:
    blobs, videos, decisions, stats = [], [], [], []
    for _ in range(profile.videos):
        clip = pop.clips[int(rng.integers(len(pop.clips)))]
        data = clip.path.read_bytes() + rng.bytes(32)
        sha, size, _new = cell.blobs.put_stream(io.BytesIO(data))
        subject.blob_shas.append(sha)
        blob_id, video_id = new_id(), new_id()
        blobs.append(
            {
                "id": blob_id,
                "domicile": subject.domicile,
                "sha256": sha,
                "size_bytes": size,
                "content_type": "video/mp4",
                "owner_id": subject.user_id,
                "created_at": now,
            }
        )
        duration = int(rng.choice(pop.durations))
        videos.append(
            video_row(video_id, subject.domicile, subject.user_id, blob_id, clip, duration, now)
        )
        decisions.append(decision_row(video_id, subject.domicile, subject.user_id, now))
        stats.append(zero_row(video_id, subject.domicile, now))
    return blobs, videos, decisions, stats


def _video_domiciles(cell: Cell, video_ids: set[str]) -> dict[str, str]:
    videos = TABLES["videos"]
    ids = sorted(video_ids)
    out: dict[str, str] = {}
    with cell.store.connect() as conn:
        for start in range(0, len(ids), 500):
            stmt = sa.select(videos.c.id, videos.c.domicile).where(
                videos.c.id.in_(ids[start : start + 500])
            )
            out.update({r.id: r.domicile for r in conn.execute(stmt)})
    return out


def rows_held(cell: Cell, user_id: str) -> dict[str, int]:
    """Rows naming the user, per data-map table, counted once each (any subject column)."""
    out = {}
    with cell.store.connect() as conn:
        for table in subject_tables():
            tbl = TABLES[table.name]
            match = sa.or_(*(tbl.c[c] == user_id for c in table.subject_columns))
            out[table.name] = int(
                conn.execute(sa.select(sa.func.count()).select_from(tbl).where(match)).scalar_one()
            )
    return out


def check_profile(held: dict[str, int], profile: Profile) -> None:
    """The setup wrote what the profile says (else every figure after it would be wrong)."""
    want = {
        "users": 1,
        "sessions": 1,
        "events": profile.events,
        "likes": profile.likes,
        "comments": profile.comments,
        "videos": profile.videos,
        "blobs": profile.videos,
        "moderation_decisions": profile.videos,
        "follows": profile.follows + profile.fans,
        "consents": profile.consents,
    }
    wrong = {t: (held.get(t), n) for t, n in want.items() if held.get(t) != n}
    if wrong:
        raise BenchError(f"the {profile.name} user's setup is off (held, wanted): {wrong}")
