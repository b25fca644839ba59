"""Model artefacts on disk with their lineage: `<cell root>/models/<version>/`, refused if foreign.

A version folder holds `ranker.json`, the candidate artefacts (`video_ids.json`,
`embeddings.npy`, `cowatch.npy`, `ann.index`) and `manifest.json` (cell, jurisdictions whose data
trained it, data snapshot digest, row counts, time, code version, the sha256 of every artefact
file). Versions are written to a temporary folder and renamed into place, so a reader never sees
half a model; every file is checked against the manifest before anything is served from it."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from carveout.cells import Cell
from carveout.cells.policy import CellSpec, Policy
from carveout.core import CarveoutError, new_id
from carveout.recommend import stepwise_json
from carveout.recommend.ann import AnnIndex
from carveout.recommend.candidates import CandidateModel
from carveout.recommend.ranker import Ranker

MODELS_DIR = "models"
RANKER_FILE = "ranker.json"
MANIFEST_FILE = "manifest.json"
IDS_FILE = "video_ids.json"
VECTORS_FILE = "embeddings.npy"
COWATCH_FILE = "cowatch.npy"
INDEX_FILE = "ann.index"
FORMAT = 2
READABLE = (1, 2)  # format 1: a ranker without candidate artefacts


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
    files: dict[str, str] = field(default_factory=dict)  # candidate artefact -> sha256

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
            files={str(k): str(v) for k, v in raw.get("files", {}).items()},
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


@dataclass(frozen=True)
class Version:
    """One loaded, checked model version."""

    ranker: Ranker
    manifest: Manifest
    candidates: CandidateModel | None


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(
    cell: Cell, ranker: Ranker, manifest: Manifest, candidates: CandidateModel | None = None
) -> Path:
    """Write a version folder atomically; the manifest carries every artefact's digest."""
    root = models_dir(cell)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{new_id()}"
    tmp.mkdir()
    body = json.dumps(ranker.to_json(), separators=(",", ":")).encode()
    (tmp / RANKER_FILE).write_bytes(body)
    files: dict[str, str] = {}
    if candidates is not None:
        (tmp / IDS_FILE).write_text(json.dumps(candidates.video_ids), encoding="utf-8")
        (tmp / VECTORS_FILE).write_bytes(_npy(candidates.vectors))
        (tmp / COWATCH_FILE).write_bytes(_npy(candidates.cowatch))
        if isinstance(candidates.index, AnnIndex):
            candidates.index.save(tmp / INDEX_FILE)
        for name in (IDS_FILE, VECTORS_FILE, COWATCH_FILE, INDEX_FILE):
            if (tmp / name).is_file():
                files[name] = _sha(tmp / name)
    manifest = Manifest(
        **{
            **asdict(manifest),
            "artefact_sha256": hashlib.sha256(body).hexdigest(),
            "files": files,
        }
    )
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.to_json(), indent=2), encoding="utf-8")
    final = root / manifest.version
    tmp.replace(final)
    return final


def read_manifest(path: Path) -> Manifest:
    return Manifest.from_json(json.loads((path / MANIFEST_FILE).read_text("utf-8")))


def versions(cell: Cell) -> list[Path]:
    """Version folders, newest first (versions are UUIDv7, so names sort by time)."""
    root = models_dir(cell)
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True
    )


def load(path: Path, spec: CellSpec, policy: Policy | None = None) -> tuple[Ranker, Manifest]:
    """Read and check one version's ranker (and every file's digest)."""
    version = load_version(path, spec, policy)
    return version.ranker, version.manifest


def load_version(path: Path, spec: CellSpec, policy: Policy | None = None) -> Version:
    """Read and check one version; anything wrong raises ArtefactRefused naming the problem."""
    try:
        manifest = Manifest.from_json(json.loads((path / MANIFEST_FILE).read_text("utf-8")))
        body = (path / RANKER_FILE).read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtefactRefused(
            f"model {path.name}: unreadable manifest or artefact ({exc})"
        ) from exc
    if manifest.format not in READABLE:
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
    for name, sha in manifest.files.items():
        if name not in (IDS_FILE, VECTORS_FILE, COWATCH_FILE, INDEX_FILE):
            raise ArtefactRefused(f"model {path.name}: unknown artefact file {name!r}")
        try:
            ok = _sha(path / name) == sha
        except OSError as exc:
            raise ArtefactRefused(f"model {path.name}: {name} unreadable ({exc})") from exc
        if not ok:
            raise ArtefactRefused(f"model {path.name}: {name} digest does not match its manifest")
    try:
        # Step by step: a background load must not hold the interpreter's lock for seconds.
        ranker = Ranker.from_json(stepwise_json.loads(body.decode("utf-8")))
        candidates = _candidates(path, manifest)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise ArtefactRefused(f"model {path.name}: corrupt artefact ({exc})") from exc
    return Version(ranker, manifest, candidates)


def _candidates(path: Path, manifest: Manifest) -> CandidateModel | None:
    if IDS_FILE not in manifest.files:
        return None
    ids = [str(v) for v in stepwise_json.loads((path / IDS_FILE).read_text("utf-8"), depth=1)]
    vectors = np.load(path / VECTORS_FILE, allow_pickle=False)
    cowatch = np.load(path / COWATCH_FILE, allow_pickle=False)
    if vectors.shape[0] != len(ids) or cowatch.shape[0] != len(ids):
        raise ValueError("embeddings, co-watch and video ids disagree in length")
    index = None
    if INDEX_FILE in manifest.files:
        index = AnnIndex.load(path / INDEX_FILE, vectors.shape[1])
        if len(index) != len(ids):
            raise ValueError("the ANN index and the video ids disagree in length")
    return CandidateModel(ids, vectors.astype(np.float32, copy=False), cowatch, index)
