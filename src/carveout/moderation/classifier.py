"""The trained text classifier of a cell: per-label scores and the action its thresholds choose."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from carveout.core import InvalidInput
from carveout.moderation.features import counts, weigh

MODEL_DIR = "moderation/text-model"
MANIFEST = "manifest.json"
ARRAYS = "model.npz"
MAX_TEXT = 10_000


@dataclass(frozen=True)
class Thresholds:
    auto: float | None  # score at which an automatic action is taken; None: never automatic
    review: float  # score at which a human reviews


@dataclass(frozen=True)
class Score:
    label: str
    score: float
    band: str  # "auto" | "review" | "clear"


class TextModel:
    def __init__(self, manifest: dict[str, Any], arrays: dict[str, npt.NDArray[np.float32]]):
        self.manifest = manifest
        self.labels: tuple[str, ...] = tuple(manifest["labels"])
        self.thresholds = {
            label: Thresholds(v["auto"], float(v["review"]))
            for label, v in manifest["thresholds"].items()
        }
        self._idf = arrays["idf"]
        self._coef = arrays["coef"]  # (labels, features)
        self._intercept = arrays["intercept"]

    def scores(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """(texts, labels) probabilities."""
        long = [i for i, t in enumerate(texts) if len(t) > MAX_TEXT]
        if long:
            raise InvalidInput(f"text {long[0]} longer than {MAX_TEXT} characters")
        x = weigh(counts(texts), self._idf)
        logits = np.asarray(x @ self._coef.T, dtype=np.float64) + self._intercept
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def classify(self, text: str) -> list[Score]:
        row = self.scores([text])[0]
        return [
            Score(label, float(s), self.band(label, float(s)))
            for label, s in zip(self.labels, row, strict=True)
        ]

    def band(self, label: str, score: float) -> str:
        th = self.thresholds[label]
        if th.auto is not None and score >= th.auto:
            return "auto"
        return "review" if score >= th.review else "clear"

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "model.tmp.npz"
        np.savez_compressed(tmp, idf=self._idf, coef=self._coef, intercept=self._intercept)
        tmp.replace(directory / ARRAYS)
        text = json.dumps(self.manifest, indent=2, ensure_ascii=False)
        (directory / "manifest.tmp.json").write_text(text, encoding="utf-8")
        (directory / "manifest.tmp.json").replace(directory / MANIFEST)


def load_model(directory: Path) -> TextModel | None:
    """The model saved in `directory`, or None when none was trained there."""
    if not (directory / MANIFEST).exists() or not (directory / ARRAYS).exists():
        return None
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    with np.load(directory / ARRAYS, allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k], dtype=np.float32) for k in ("idf", "coef", "intercept")}
    return TextModel(manifest, arrays)


_CACHE: dict[Path, tuple[float, TextModel | None]] = {}


def cell_model(cell_root: Path) -> TextModel | None:
    """The cell's model, reloaded when `train` replaces it."""
    directory = cell_root / MODEL_DIR
    stamp = (directory / MANIFEST).stat().st_mtime if (directory / MANIFEST).exists() else 0.0
    cached = _CACHE.get(directory)
    if cached is None or cached[0] != stamp:
        cached = _CACHE[directory] = (stamp, load_model(directory))
    return cached[1]
