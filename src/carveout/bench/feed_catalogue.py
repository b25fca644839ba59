"""The feed bench's synthetic catalogue (seeded; calibrated on KuaiRand and KuaiRec; SYNTHETIC).

Durations and videos per author are drawn from KuaiRand's video_features_basic_pure.csv, the
category mix from KuaiRec's first-level categories. Videos go into a real cell's SQLite database;
the model version (priors, embeddings, co-watch, ANN index) is synthesised from the same draws
and saved through the same artefact code as a trained one, its manifest marked synthetic."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from carveout.cells import Cell
from carveout.core import InvalidInput, new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend import artefact
from carveout.recommend.ann import AnnIndex
from carveout.recommend.artefact import Manifest
from carveout.recommend.candidates import CandidateModel
from carveout.recommend.ranker import Ranker, RankerParams

Progress = Callable[[str, float, float, str], None]
DIM = 32
DAY_MS = 24 * 3600 * 1000
CHUNK = 50_000
LABEL = "synthetic (seeded; calibrated on KuaiRand durations and videos per author, KuaiRec mix)"
# The one-cell deployment the feed and train benches build their catalogue in.
POLICY = """
version = 1
[sites.here]
[cells.bench]
jurisdictions = ["US"]
primary_site = "here"
"""


@dataclass(frozen=True)
class Calibration:
    durations_ms: np.ndarray
    videos_per_author: np.ndarray
    categories: list[str]
    category_p: np.ndarray


def calibrate(datasets: Path) -> Calibration:
    kuairand = datasets / "kuairand" / "video_features_basic_pure.csv"
    kuairec = datasets / "kuairec" / "kuairec_caption_category.csv"
    for path in (kuairand, kuairec):
        if not path.is_file():
            raise InvalidInput(
                f"{path} is missing: the feed bench calibrates on KuaiRand "
                "(kuairand.com) and KuaiRec (kuairec.com); set CARVEOUT_DATASETS"
            )
    durations: list[float] = []
    authors: Counter[str] = Counter()
    with kuairand.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            authors[row["author_id"]] += 1
            if row["video_duration"]:
                durations.append(float(row["video_duration"]))
    mix: Counter[str] = Counter()
    with kuairec.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            name = row.get("first_level_category_name")
            if name and name != "UNKNOWN":
                mix[name] += 1
    cats = sorted(mix)
    p = np.array([mix[c] for c in cats], dtype=np.float64)
    return Calibration(
        np.array([d for d in durations if d > 0], dtype=np.float64),
        np.array(list(authors.values()), dtype=np.int64),
        cats,
        p / p.sum(),
    )


@dataclass
class Synthetic:
    video_ids: list[str]
    creator_ids: list[str]
    categories: np.ndarray  # category index per video
    vectors: np.ndarray
    n_creators: int


def _creators(cal: Calibration, n: int, rng: np.random.Generator) -> np.ndarray:
    """Creator index per video, with KuaiRand's videos-per-author distribution."""
    sizes = rng.choice(cal.videos_per_author, size=n, replace=True)
    owner = np.repeat(np.arange(sizes.size), sizes)[:n]
    rng.shuffle(owner)
    return owner


def build_catalogue(
    cell: Cell, cal: Calibration, n: int, seed: int, progress: Progress
) -> Synthetic:
    """Insert n published videos into the cell; return what the model is synthesised from."""
    rng = np.random.default_rng(seed)
    owner = _creators(cal, n, rng)
    n_creators = int(owner.max()) + 1
    creator_ids = [new_id() for _ in range(n_creators)]
    cats = rng.choice(len(cal.categories), size=n, p=cal.category_p)
    durations = rng.choice(cal.durations_ms, size=n).astype(np.int64)
    # Uploads over the last 30 days, oldest first (ids are UUIDv7, minted in this order).
    now = now_ms()
    created = np.sort(now - 2 * DAY_MS - rng.integers(0, 28 * DAY_MS, size=n))
    # Embeddings: category centre + the creator's style + the video's own noise.
    centres = rng.normal(size=(len(cal.categories), DIM)).astype(np.float32)
    style = rng.normal(size=(n_creators, DIM)).astype(np.float32)
    vectors = centres[cats] + 0.7 * style[owner]
    vectors += 0.5 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    video_ids = [new_id() for _ in range(n)]
    videos = TABLES["videos"]
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        rows = [
            {
                "id": video_ids[i],
                "domicile": "US",
                "creator_id": creator_ids[owner[i]],
                "caption": "",
                "hashtags": json.dumps([f"s{cats[i]}"]),
                "category": cal.categories[cats[i]],
                "duration_ms": int(durations[i]),
                "width": 720,
                "height": 1280,
                "blob_id": video_ids[i],
                "status": "published",
                "external_ref": f"synthetic:{i}",
                "created_at": int(created[i]),
            }
            for i in range(start, stop)
        ]
        with cell.store.begin() as conn:
            conn.execute(sa.insert(videos), rows)
        progress("synthetic catalogue", stop, n, f"{stop:,} videos")
    return Synthetic(video_ids, [creator_ids[o] for o in owner.tolist()], cats, vectors, n_creators)


def save_model(cell: Cell, syn: Synthetic, seed: int, progress: Progress) -> tuple[Manifest, float]:
    """Synthetic priors, co-watch and the ANN index, saved as the cell's model version."""
    import time

    rng = np.random.default_rng(seed + 1)
    n = len(syn.video_ids)
    views = rng.integers(1, 60, size=n)
    means = np.minimum(rng.lognormal(-0.2, 0.5, size=n), 2.0)
    ranker = Ranker(
        RankerParams(cap=2.0, shrink=5.0),
        float(np.mean(means)),
        dict(zip(syn.video_ids, (means * views).tolist(), strict=True)),
        dict(zip(syn.video_ids, views.tolist(), strict=True)),
        {},
    )
    # Co-watch: other videos of the same category (what co-watch mostly finds), synthetic.
    order = np.argsort(syn.categories, kind="stable")
    starts = np.searchsorted(syn.categories[order], syn.categories)
    counts = np.bincount(syn.categories, minlength=int(syn.categories.max()) + 1)[syn.categories]
    picks = starts[:, None] + (rng.random((n, 20)) * counts[:, None]).astype(np.int64)
    cowatch = order[picks].astype(np.int32)
    progress("ANN index", 0, 1, f"usearch HNSW over {n:,} x {DIM}")
    started = time.perf_counter()
    index = AnnIndex.build(syn.vectors)
    build_s = time.perf_counter() - started
    progress("ANN index", 1, 1, f"built in {build_s:.0f} s")
    manifest = Manifest(
        version=new_id(),
        cell=cell.name,
        jurisdictions=("US",),
        snapshot_digest="0" * 64,
        rows={"videos": n, "creators": syn.n_creators},
        trained_at_ms=now_ms(),
        code_version=artefact.code_version(),
        params={"synthetic": LABEL},
        artefact_sha256="",
    )
    model = CandidateModel(syn.video_ids, syn.vectors, cowatch, index)
    path = artefact.save(cell, ranker, manifest, model)
    return artefact.read_manifest(path), build_s
