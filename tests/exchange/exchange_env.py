"""A three-cell deployment for the content exchange: two cells that exchange, one that does not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from carveout import exchange
from carveout.api import create_app
from carveout.cells import Cell, Deployment, init_data_dir
from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import Fingerprint, fingerprint
from media import make_video

POLICY = """
version = 1
[sites.us]
[sites.sg]
[sites.eu]
[cells.na-anz]
jurisdictions = ["US", "CA", "AU", "NZ"]
primary_site = "us"
backup_site = "sg"
content_exchange = true
storage = "{na}"
[cells.closed]
jurisdictions = ["DE", "FR"]
primary_site = "eu"
backup_site = "sg"
content_exchange = false
storage = "sqlite"
[cells.global]
jurisdictions = ["*"]
primary_site = "eu"
backup_site = "sg"
content_exchange = true
storage = "{glob}"
"""

NA = ("AU", "CA", "NZ", "US")


@dataclass
class Env:
    client: TestClient
    deployment: Deployment
    tmp: Path
    n: int = 0
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # user id -> signup body

    @property
    def glob(self) -> Cell:
        return self.deployment.cell("global")

    @property
    def na(self) -> Cell:
        return self.deployment.cell("na-anz")

    def signup(self, country: str, **fields: Any) -> dict[str, str]:
        self.n += 1
        body = {
            "handle": f"maker{self.n}",
            "display_name": f"Private Name {self.n}",
            "email": f"private{self.n}@mail.example.org",
            "password": "correct horse battery",
            "birth_year": 1990,
            "country": country,
            **fields,
        }
        r = self.client.post("/v1/users", json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        self.users[data["user"]["id"]] = body
        return {"Authorization": f"Bearer {data['token']}", "id": data["user"]["id"]}

    def clip(self, seed: int) -> Path:
        """The same file for the same seed (encoding again would change its bytes)."""
        path = self.tmp / f"clip-{seed}.mp4"
        return path if path.exists() else make_video(path, seed=seed, seconds=2.0, size=96)

    def upload(self, who: dict[str, str], seed: int, caption: str = "a clip") -> dict[str, Any]:
        with self.clip(seed).open("rb") as fh:
            r = self.client.post(
                "/v1/videos",
                headers=auth(who),
                files={"file": ("clip.mp4", fh, "video/mp4")},
                data={"caption": caption, "hashtags": "fun", "category": "tests"},
            )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def sync(self, origin: str = "global", receiver: str = "na-anz", **kw: Any) -> Any:
        p = self.deployment.policy
        return exchange.sync(p, self.deployment.cell(origin), self.deployment.cell(receiver), **kw)

    def fingerprints(self) -> dict[str, Fingerprint]:
        return {c.name: fingerprint(c.store, c.blobs) for c in self.deployment.cells()}


def auth(who: dict[str, str]) -> dict[str, str]:
    return {"Authorization": who["Authorization"]}


def make_env(tmp: Path, na: str = "sqlite", glob: str = "sqlite") -> Env:
    deployment = init_data_dir(tmp / "data", POLICY.format(na=na, glob=glob))
    return Env(TestClient(create_app(deployment)), deployment, tmp)


def all_text(cell: Cell) -> str:
    """Every value of every table of the cell, as text: what a byte-level search looks at on
    either backend."""
    parts: list[str] = []
    with cell.store.connect() as conn:
        for table in DATA_MAP.all_tables:
            for row in conn.execute(sa.select(TABLES[table.name])):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def count(cell: Cell, table: str, *where: Any) -> int:
    tbl = TABLES[table]
    with cell.store.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(tbl)
        for w in where:
            stmt = stmt.where(w)
        return int(conn.execute(stmt).scalar_one())
