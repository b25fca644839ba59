"""A test deployment whose users, videos and watch events are written straight to a cell."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from carveout import events
from carveout.accounts import User, sealed_user_rows
from carveout.cells import Cell, Deployment
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend import artefact

POLICY = """
version = 1
[sites.us]
[sites.sg]
[cells.na]
jurisdictions = ["US", "CA"]
primary_site = "us"
backup_site = "sg"
[cells.global]
jurisdictions = ["*"]
primary_site = "sg"
"""


@dataclass
class World:
    deployment: Deployment
    cell: Cell
    users: list[User] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)

    def user(self, country: str = "CA") -> User:
        n = len(self.users)
        row = {
            "id": new_id(),
            "domicile": country,
            "handle": f"u{n}",
            "display_name": f"U {n}",
            "email": f"u{n}@example.com",
            "birth_year": 1990,
            "password_hash": "",
            "status": "active",
            "created_at": now_ms(),
        }
        with self.cell.store.begin() as conn:
            conn.execute(sa.insert(TABLES["users"]), sealed_user_rows(self.cell.vault, [row]))
        user = User.from_row(row)
        self.users.append(user)
        return user

    def video(self, creator: User, category: str = "pets", tags: tuple[str, ...] = ()) -> str:
        vid = new_id()
        with self.cell.store.begin() as conn:
            conn.execute(
                sa.insert(TABLES["videos"]),
                [
                    {
                        "id": vid,
                        "domicile": creator.domicile,
                        "creator_id": creator.id,
                        "caption": "",
                        "hashtags": json.dumps(list(tags)),
                        "category": category,
                        "duration_ms": 10_000,
                        "width": 64,
                        "height": 64,
                        "blob_id": new_id(),
                        "status": "published",
                        "external_ref": None,
                        "created_at": now_ms(),
                    }
                ],
            )
        self.videos.append(vid)
        return vid

    def watch(self, user: User, video: str, ratio: float) -> None:
        ev = events.EventIn(
            video_id=video,
            kind=events.EventKind.WATCH,
            watched_ms=int(ratio * 10_000),
            occurred_at=None,
        )
        events.record(self.cell.store, user, [ev])


def publish_copy(cell: Cell, version: str, damage: Callable[[Path], None]) -> str:
    """A copy of a saved version under a newer version id, damaged by `damage` before it is
    renamed into place (as artefact.save does), so no reader sees it undamaged. Returns its id."""
    models = artefact.models_dir(cell)
    tmp = models / f".tmp-{new_id()}"
    shutil.copytree(models / version, tmp)
    damage(tmp)
    newer = new_id()
    raw = json.loads((tmp / artefact.MANIFEST_FILE).read_text("utf-8"))
    raw["version"] = newer
    (tmp / artefact.MANIFEST_FILE).write_text(json.dumps(raw), encoding="utf-8")
    tmp.rename(models / newer)
    return newer
