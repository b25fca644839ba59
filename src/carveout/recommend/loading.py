"""Loading a model version for serving, off the request path: everything a swap needs, prepared.

At 1M videos reading and checking a version (digests, a million-entry ranker, the ANN index)
and joining it to the catalogue takes seconds to tens of seconds. `prepare` does all of it
without touching what is served, so a background thread can run it while requests go on with
the previous version; the swap itself is then a few attribute assignments under the cell's lock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carveout.cells.policy import CellSpec, Policy
from carveout.recommend import artefact
from carveout.recommend.artefact import Manifest
from carveout.recommend.candidates import CandidateModel
from carveout.recommend.catalogue import Catalogue
from carveout.recommend.pool import ServingIndex
from carveout.recommend.ranker import Ranker


@dataclass(frozen=True)
class Prepared:
    """A checked version, ready to serve: its ranker, candidates and (given a catalogue) the
    serving index joined to that catalogue."""

    ranker: Ranker
    manifest: Manifest
    model: CandidateModel | None
    serving: ServingIndex | None


def prepare(
    path: Path, spec: CellSpec, policy: Policy | None, catalogue: Catalogue | None
) -> Prepared:
    """Load and check one version (ArtefactRefused names what is wrong) and build its serving
    index against `catalogue`. The catalogue may be read by requests meanwhile: the build only
    looks videos up in it, and videos it gains during the build are added at the swap."""
    loaded = artefact.load_version(path, spec, policy)
    model = loaded.candidates.with_popular(loaded.ranker) if loaded.candidates else None
    serving = None
    if model is not None and catalogue is not None:
        serving = ServingIndex.build(model, loaded.ranker, catalogue)
    return Prepared(loaded.ranker, loaded.manifest, model, serving)
