"""Where each public dataset file comes from, and the check that all of them are present."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from carveout.core import NotFound


@dataclass(frozen=True)
class Publisher:
    name: str
    url: str
    licence: str


KUAIREC = Publisher("KuaiRec", "https://kuairec.com", "CC BY-SA 4.0")
KUAIRAND = Publisher("KuaiRand", "https://kuairand.com", "CC BY-SA 4.0")
THREATEXCHANGE = Publisher(
    "ThreatExchange (PDQ/vPDQ test media)", "https://github.com/facebook/ThreatExchange", "BSD"
)


@dataclass(frozen=True)
class DatasetFile:
    path: str  # relative to the datasets folder
    publisher: Publisher


def missing(datasets: Path, files: Sequence[DatasetFile]) -> list[DatasetFile]:
    return [f for f in files if not (datasets / f.path).is_file()]


def require(datasets: Path, files: Sequence[DatasetFile], what: str) -> None:
    """Raise NotFound naming every missing file and where its publisher distributes it."""
    absent = missing(datasets, files)
    if not absent:
        return
    lines = [f"{what} needs {len(absent)} file(s) missing from {datasets}:"]
    lines += [
        f"  {f.path}  ({f.publisher.name}, {f.publisher.licence}: {f.publisher.url})"
        for f in absent
    ]
    lines.append(
        "Download them from their publishers, then point --datasets (or $CARVEOUT_DATASETS) "
        "at the folder that holds them."
    )
    raise NotFound("\n".join(lines))
