"""The carve's vocabulary: its phases, what it moves, and where it keeps its pointer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from carveout.core import CarveoutError


class CarveFailed(CarveoutError):
    status = 409


class Phase(StrEnum):
    """Phases in order; the saved state names the last one completed."""

    PREPARE = "prepare"
    CAPTURE = "capture"
    COPY = "copy"
    CATCHUP = "catch-up"
    CUTOVER = "cutover"
    VERIFY = "verify"
    RETRAIN = "retrain"
    PURGE = "purge"

    @property
    def number(self) -> int:
        return list(Phase).index(self) + 2  # STEP 1 is the plan


PHASES: tuple[Phase, ...] = tuple(Phase)
# Once the cutover has switched routing, the target is the jurisdictions' home: no going back.
POINT_OF_NO_RETURN = Phase.CUTOVER


@dataclass(frozen=True)
class CarveSpec:
    """What the operator asked for; saved beside the deployment so status and resume find it."""

    target: str
    jurisdictions: tuple[str, ...]
    source: str
    storage: str  # "sqlite" or a postgresql:// URL for the target's database
    primary_site: str
    backup_site: str | None
    content_exchange: bool
    created_at: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CarveSpec:
        raw = json.loads(text)
        raw["jurisdictions"] = tuple(raw["jurisdictions"])
        return cls(**raw)


def carves_dir(data_dir: Path) -> Path:
    return data_dir / "carves"


def spec_path(data_dir: Path, target: str) -> Path:
    return carves_dir(data_dir) / f"{target}.json"
