"""Backup test helpers: a one-cell deployment on each backend, filled with rows and blobs."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from carveout.accounts import sealed_user_rows
from carveout.cells import Cell, Deployment
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.storage import Fingerprint, fingerprint

POLICY = """
version = 1
[sites.us]
[sites.sg]
{site_path}
[cells.global]
jurisdictions = ["*"]
primary_site = "us"
{backup_line}
storage = "{storage}"
"""

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def policy_text(
    storage: str = "sqlite", backup_site: str | None = "sg", sg_path: str = "", sg_s3: str = ""
) -> str:
    """`sg_s3`: the inside of an inline table, e.g. 'endpoint = "http://...", bucket = "b"'."""
    site = f'path = "{sg_path}"' if sg_path else (f"s3 = {{ {sg_s3} }}" if sg_s3 else "")
    return POLICY.format(
        storage=storage,
        backup_line=f'backup_site = "{backup_site}"' if backup_site else "",
        site_path=site,
    )


def add_users(cell: Cell, n: int, country: str = "CA") -> list[str]:
    """n users, each with a session, written in one transaction per user."""
    ids = []
    for _ in range(n):
        uid = new_id()
        tag = secrets.token_hex(6)
        with cell.store.begin() as conn:
            plain = {
                "id": uid,
                "domicile": country,
                "handle": f"u{tag}",
                "display_name": f"User {tag}",
                "email": f"u{tag}@example.com",
                "birth_year": 1990,
                "password_hash": "",
                "status": "active",
                "created_at": now_ms(),
            }
            conn.execute(sa.insert(TABLES["users"]), sealed_user_rows(cell.vault, [plain]))
            conn.execute(
                sa.insert(TABLES["sessions"]).values(
                    id=new_id(),
                    domicile=country,
                    user_id=uid,
                    token_hash=secrets.token_hex(32),
                    created_at=now_ms(),
                    expires_at=now_ms() + 60_000,
                )
            )
        ids.append(uid)
    return ids


def add_blob(cell: Cell, owner: str, tmp: Path, size: int = 50_000) -> str:
    """A media file (random bytes: incompressible, like real video) and its blobs row."""
    path = tmp / f"media-{secrets.token_hex(4)}.bin"
    path.write_bytes(os.urandom(size))
    sha, nbytes, _ = cell.blobs.put_file(path)
    with cell.store.begin() as conn:
        conn.execute(
            sa.insert(TABLES["blobs"]).values(
                id=new_id(),
                domicile="CA",
                sha256=sha,
                size_bytes=nbytes,
                content_type="video/mp4",
                owner_id=owner,
                created_at=now_ms(),
            )
        )
    return sha


@dataclass
class Env:
    deployment: Deployment
    data_dir: Path
    tmp: Path

    @property
    def cell(self) -> Cell:
        return self.deployment.cell("global")

    @property
    def site(self) -> Path:
        return self.data_dir / "sites" / "sg"

    def fingerprint(self) -> Fingerprint:
        return fingerprint(self.cell.store, self.cell.blobs)


MakeEnv = Callable[..., "Env"]
