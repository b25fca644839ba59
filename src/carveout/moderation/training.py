"""`moderation train`: fit one classifier per label and calibrate when it may act alone."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from carveout.core import now_ms
from carveout.moderation import textdata
from carveout.moderation.classifier import TextModel
from carveout.moderation.features import counts, idf_of, weigh

TARGET_PRECISION = 0.95
REVIEW_RECALL = 0.90  # the review band catches this share of positives (calibration split)
REVIEW_PRECISION = 0.5
MIN_AUTO_SUPPORT = 30  # fewer predicted positives than this cannot establish a precision


@dataclass(frozen=True)
class Split:
    train: npt.NDArray[np.int64]
    calib: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]


def split(labels: npt.NDArray[np.int64], seed: int) -> Split:
    """Stratified 60/20/20: the model learns on train, thresholds on calib, test measures both."""
    rng = np.random.default_rng(seed)
    parts: list[list[npt.NDArray[np.int64]]] = [[], [], []]
    for value in (0, 1):
        idx = np.flatnonzero(labels == value)
        rng.shuffle(idx)
        a, b = int(len(idx) * 0.6), int(len(idx) * 0.8)
        for part, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:]), strict=True):
            part.append(chunk)
    train, calib, test = (np.sort(np.concatenate(p)) for p in parts)
    return Split(train, calib, test)


def precision_recall_at(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], threshold: float
) -> tuple[float, float, int]:
    chosen = scores >= threshold
    tp = int((chosen & (labels == 1)).sum())
    n = int(chosen.sum())
    positives = int((labels == 1).sum())
    return (tp / n if n else 1.0), (tp / positives if positives else 0.0), n


def auto_threshold(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float | None:
    """The lowest score above which precision stays >= TARGET_PRECISION at every higher cut
    with enough support; None when no such cut exists."""
    order = np.argsort(-scores)
    hits = np.cumsum(labels[order] == 1)
    n = np.arange(1, len(order) + 1)
    precision = hits / n
    ok = (precision >= TARGET_PRECISION) & (n >= MIN_AUTO_SUPPORT)
    # Walk down from the top score: stop at the first cut whose precision falls short.
    best = None
    for i in range(len(order)):
        if precision[i] < TARGET_PRECISION and n[i] >= MIN_AUTO_SUPPORT:
            break
        if ok[i] and (i + 1 == len(order) or scores[order[i + 1]] < scores[order[i]]):
            best = float(scores[order[i]])
    return best


def review_threshold(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float:
    """The cut catching REVIEW_RECALL of positives, raised until at least REVIEW_PRECISION of
    what it sends is positive, so reviewers are not flooded with clean content."""
    pos = np.sort(scores[labels == 1])
    if len(pos) == 0:
        return 0.5
    cut = float(pos[int((1 - REVIEW_RECALL) * len(pos))])
    for candidate in np.unique(scores[scores >= cut]):
        if precision_recall_at(scores, labels, float(candidate))[0] >= REVIEW_PRECISION:
            return float(candidate)
    return cut


def _fit(x: Any, y: npt.NDArray[np.int64]) -> LogisticRegression:
    model = LogisticRegression(C=8.0, solver="liblinear", max_iter=200)
    model.fit(x, y)
    return model


def train(datasets: Path, *, seed: int = 0) -> TextModel:
    """Train every label on its own dataset in `datasets` (see `fit`)."""
    return fit({label: textdata.load(datasets, label) for label in textdata.LABELS}, seed=seed)


def fit(data: Mapping[str, textdata.Labelled], *, seed: int = 0) -> TextModel:
    """Train every label on its own labelled texts; thresholds from the calibration split; an
    automatic threshold is kept only if the untouched test split confirms precision >= 0.95
    there too. `split(labels, seed)` gives back the same test rows (benchmarks score them)."""
    labels = list(data)
    corpus = [t for d in data.values() for t in d.texts]
    idf = idf_of(counts(corpus))
    coefs, intercepts, thresholds, metrics, sources = [], [], {}, {}, {}
    for label in labels:
        d = data[label]
        y = np.asarray(d.labels, dtype=np.int64)
        x = weigh(counts(d.texts), idf)
        parts = split(y, seed)
        model = _fit(x[parts.train], y[parts.train])
        calib_scores = model.predict_proba(x[parts.calib])[:, 1]
        test_scores = model.predict_proba(x[parts.test])[:, 1]
        auto = auto_threshold(calib_scores, y[parts.calib])
        review = review_threshold(calib_scores, y[parts.calib])
        m: dict[str, Any] = {
            "rows": len(y),
            "positives": int(y.sum()),
            "test_rows": len(parts.test),
            "roc_auc": round(float(roc_auc_score(y[parts.test], test_scores)), 4),
        }
        if auto is not None:
            p, r, n = precision_recall_at(test_scores, y[parts.test], auto)
            m.update(auto_precision=round(p, 4), auto_recall=round(r, 4), auto_support=n)
            if p < TARGET_PRECISION or n < MIN_AUTO_SUPPORT:
                m["auto_disabled"] = f"test precision {p:.3f} on {n} rows < {TARGET_PRECISION}"
                auto = None
        p, r, n = precision_recall_at(test_scores, y[parts.test], review)
        m.update(review_precision=round(p, 4), review_recall=round(r, 4))
        review = min(review, auto) if auto is not None else review
        thresholds[label] = {"auto": auto, "review": review}
        metrics[label] = m
        sources[label] = d.source
        coefs.append(model.coef_[0].astype(np.float32))
        intercepts.append(float(model.intercept_[0]))
    digest = hashlib.sha256("\n".join(corpus).encode("utf-8")).hexdigest()
    manifest = {
        "kind": "carveout text classifier (hashed n-grams, TF-IDF, logistic regression)",
        "labels": labels,
        "thresholds": thresholds,
        "metrics": metrics,
        "target_precision": TARGET_PRECISION,
        "sources": sources,
        "training_text_sha256": digest,
        "seed": seed,
        "trained_at": now_ms(),
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }
    arrays = {
        "idf": idf,
        "coef": np.stack(coefs),
        "intercept": np.asarray(intercepts, dtype=np.float32),
    }
    return TextModel(manifest, arrays)
