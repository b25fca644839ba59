"""Text: the cell classifier on held-out rows of each label, next to alt-profanity-check.

The classifier is trained exactly as `carveout moderation train` trains it (same split, same
thresholds); its test rows, never seen by training or calibration, are then scored by the saved
model and by the off-the-shelf baseline a user would try first, `alt-profanity-check`
(a linear SVM over word n-grams, trained on offensive-language data), in the same run."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from carveout.bench.api import Progress
from carveout.bench.moderation_figures import Figure, Section
from carveout.moderation import TextModel, textdata
from carveout.moderation.training import fit, precision_recall_at, split

STEP = "text"
BASELINE = "alt-profanity-check"
BASELINE_CUT = 0.5  # what its predict() uses


def _baseline() -> tuple[Any, str]:
    """profanity_check.predict_prob and its version, or (None, why not)."""
    try:
        from importlib.metadata import version

        from profanity_check import predict_prob
    except ImportError as exc:  # an optional (dev/bench) dependency
        return None, f"not installed ({exc}): pip install 'carveout[dev]'"
    return predict_prob, version(BASELINE)


def _subsample(data: textdata.Labelled, rows: int | None, seed: int) -> textdata.Labelled:
    if rows is None or len(data.texts) <= rows:
        return data
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    keep = sorted(rng.sample(range(len(data.texts)), rows))
    return textdata.Labelled(
        [data.texts[i] for i in keep], [data.labels[i] for i in keep], data.source
    )


def _auc(y: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> float | None:
    return float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else None


def run_text(
    datasets: Path, progress: Progress, *, rows: int | None, seed: int
) -> tuple[Section, TextModel]:
    """Train, then measure; the model is returned for the latency section to install."""
    progress(STEP, 0, 3, "loading the labelled data")
    data = {
        label: _subsample(textdata.load(datasets, label), rows, seed) for label in textdata.LABELS
    }
    progress(STEP, 1, 3, "training (as `carveout moderation train`)")
    model = fit(data, seed=seed)
    predict_prob, baseline_version = _baseline()
    progress(STEP, 2, 3, f"scoring the test splits, and with {BASELINE}")
    section = Section("text")
    per_label: dict[str, Any] = {}
    for j, label in enumerate(model.labels):
        y_all = np.asarray(data[label].labels, dtype=np.int64)
        test = split(y_all, seed).test
        texts = [data[label].texts[i] for i in test]
        y = y_all[test]
        ours = model.scores(texts)[:, j]
        th = model.thresholds[label]
        auc = _auc(y, ours)
        entry: dict[str, Any] = {
            "source": data[label].source,
            "rows": len(y_all),
            "test_rows": len(y),
            "test_positives": int(y.sum()),
            "roc_auc": auc,
            "auto_threshold": th.auto,
            "review_threshold": th.review,
        }
        if th.auto is not None:
            p, r, n = precision_recall_at(ours, y, th.auto)
            entry.update(auto_precision=p, auto_recall=r, auto_support=n)
        p, r, n = precision_recall_at(ours, y, th.review)
        entry.update(review_precision=p, review_recall=r, review_support=n)
        base_auc = base_p = base_r = None
        if predict_prob is not None:
            theirs = np.asarray(predict_prob(texts), dtype=np.float64)
            base_auc = _auc(y, theirs)
            base_p, base_r, _ = precision_recall_at(theirs, y, BASELINE_CUT)
            entry["baseline"] = {"roc_auc": base_auc, "precision": base_p, "recall": base_r}
        per_label[label] = entry
        base_name = f"{BASELINE} {baseline_version}" if predict_prob is not None else BASELINE
        section.figures.append(
            Figure(
                f"{label}: ROC AUC",
                auc,
                "auc",
                base_auc,
                base_name,
                ratio=True,
                note=f"{len(y):,} held-out rows, {int(y.sum()):,} positive ({data[label].source})",
            )
        )
        if th.auto is not None:
            cut = f"automatic cut {th.auto:.3f}"
            p_auto, r_auto = entry["auto_precision"], entry["auto_recall"]
        else:
            cut = f"no automatic cut (review from {th.review:.3f})"
            p_auto, r_auto = entry["review_precision"], entry["review_recall"]
        vs = f"{base_name} at {BASELINE_CUT}"
        section.figures.append(
            Figure(f"{label}: precision, {cut}", 100 * p_auto, "%", _pct(base_p), vs, True)
        )
        section.figures.append(
            Figure(f"{label}: recall, {cut}", 100 * r_auto, "%", _pct(base_r), vs, True)
        )
    section.details = {
        "seed": seed,
        "rows_per_label": rows,
        "split": "stratified 60/20/20 train/calibration/test per label (the training split)",
        "baseline": f"{BASELINE} {baseline_version}, predict_prob, cut {BASELINE_CUT}",
        "labels": per_label,
    }
    progress(STEP, 3, 3, "done")
    return section, model


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value
