"""Model artefacts on disk with their lineage: `<cell root>/models/<version>/`, refused if foreign.

A version folder holds `ranker.json` and `manifest.json` (cell, jurisdictions whose data trained
it, data snapshot digest, row counts, time, code version, the artefact's sha256). Versions are
written to a temporary folder and renamed into place, so a reader never sees half a model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from carveout.cells import Cell
from carveout.cells.policy import CellSpec, Policy
from carveout.core import CarveoutError, new_id
from carveout.recommend.ranker import Ranker

MODELS_DIR = "models"
RANKER_FILE = "ranker.json"
MANIFEST_FILE = "manifest.json"
FORMAT = 1


class ArtefactRefused(CarveoutError):
    """A model artefact that must not be served: corrupt, unreadable or of foreign lineage."""


@dataclass(frozen=True)
class Manifest:
    version: str
    cell: str
    jurisdictions: tuple[str, ...]  # every jurisdiction whose rows trained the model
    snapshot_digest: str  # sha256 over the ids of the events and videos read
    rows: dict[str, int]
    trained_at_ms: int
    code_version: str
    params: dict[str, Any]
    artefact_sha256: str
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "jurisdictions": list(self.jurisdictions)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        return cls(
            version=str(raw["version"]),
            cell=str(raw["cell"]),
            jurisdictions=tuple(str(j) for j in raw["jurisdictions"]),
            snapshot_digest=str(raw["snapshot_digest"]),
            rows={str(k): int(v) for k, v in raw["rows"].items()},
            trained_at_ms=int(raw["trained_at_ms"]),
            code_version=str(raw["code_version"]),
            params=dict(raw["params"]),
            artefact_sha256=str(raw["artefact_sha256"]),
            format=int(raw["format"]),
        )


def code_version() -> str:
    try:
        return metadata.version("carveout")
    except metadata.PackageNotFoundError:
        return "unknown"


def models_dir(cell: Cell) -> Path:
    return cell.root / MODELS_DIR


def foreign_jurisdictions(
    jurisdictions: tuple[str, ...], spec: CellSpec, policy: Policy | None = None
) -> list[str]:
    """Jurisdictions the cell does not serve. A '*' cell serves whatever the policy (when given)
    does not map to another cell; without the policy it cannot tell, and accepts the rest."""
    foreign: list[str] = []
    for code in jurisdictions:
        if code in spec.jurisdictions:
            continue
        if spec.serves_rest and (
            policy is None
            or not any(
                code in other.jurisdictions for other in policy.cells if other.name != spec.name
            )
        ):
            continue
        foreign.append(code)
    return foreign


def save(cell: Cell, ranker: Ranker, manifest: Manifest) -> Path:
    """Write a version folder atomically; the manifest carries the artefact's digest."""
    root = models_dir(cell)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{new_id()}"
    tmp.mkdir()
    body = json.dumps(ranker.to_json(), separators=(",", ":")).encode()
    (tmp / RANKER_FILE).write_bytes(body)
    manifest = Manifest(**{**asdict(manifest), "artefact_sha256": hashlib.sha256(body).hexdigest()})
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.to_json(), indent=2), encoding="utf-8")
    final = root / manifest.version
    tmp.replace(final)
    return final


def versions(cell: Cell) -> list[Path]:
    """Version folders, newest first (versions are UUIDv7, so names sort by time)."""
    root = models_dir(cell)
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True
    )


def load(path: Path, spec: CellSpec, policy: Policy | None = None) -> tuple[Ranker, Manifest]:
    """Read and check one version; anything wrong raises ArtefactRefused naming the problem."""
    try:
        manifest = Manifest.from_json(json.loads((path / MANIFEST_FILE).read_text("utf-8")))
        body = (path / RANKER_FILE).read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtefactRefused(
            f"model {path.name}: unreadable manifest or artefact ({exc})"
        ) from exc
    if manifest.format != FORMAT:
        raise ArtefactRefused(f"model {path.name}: format {manifest.format}, expected {FORMAT}")
    if manifest.cell != spec.name:
        raise ArtefactRefused(
            f"model {path.name}: trained for cell {manifest.cell!r}, not {spec.name!r}"
        )
    foreign = foreign_jurisdictions(manifest.jurisdictions, spec, policy)
    if foreign:
        raise ArtefactRefused(
            f"model {path.name}: lineage includes {', '.join(foreign)}, outside cell {spec.name!r}"
        )
    if hashlib.sha256(body).hexdigest() != manifest.artefact_sha256:
        raise ArtefactRefused(f"model {path.name}: artefact digest does not match its manifest")
    try:
        ranker = Ranker.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ArtefactRefused(f"model {path.name}: corrupt artefact ({exc})") from exc
    return ranker, manifest
