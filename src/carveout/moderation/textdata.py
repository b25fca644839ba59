"""The labelled text the classifier learns from, read in place from the shared datasets."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from carveout.core import InvalidInput

LABELS = ("toxicity", "hate", "offensive", "spam")
FILES = {
    "toxicity": (
        "moderation/toxic-spans/data/comments.csv",
        "moderation/toxic-spans/data/annotations.csv",
    ),
    "hate": ("moderation/davidson-hate-speech/labeled_data.csv",),
    "offensive": ("moderation/davidson-hate-speech/labeled_data.csv",),
    "spam": (
        "moderation/youtube-spam-collection",
        "moderation/sms-spam-collection/SMSSpamCollection",
    ),
}
PUBLISHERS = (
    "toxic-spans: github.com/ipavlopoulos/toxic_spans; Davidson et al.: "
    "github.com/t-davidson/hate-speech-and-offensive-language; YouTube Spam Collection and SMS "
    "Spam Collection: archive.ics.uci.edu"
)


@dataclass(frozen=True)
class Labelled:
    texts: list[str]
    labels: list[int]
    source: str


def _need(root: Path, label: str) -> None:
    missing = [f for f in FILES[label] if not (root / f).exists()]
    if missing:
        raise InvalidInput(
            f"missing {', '.join(missing)} under {root} (set --datasets or CARVEOUT_DATASETS); "
            f"published at {PUBLISHERS}"
        )


def toxicity(root: Path) -> Labelled:
    """Civil Comments with per-annotator judgements: toxic unless most annotators said not."""
    _need(root, "toxicity")
    base = root / "moderation/toxic-spans/data"
    votes: dict[str, list[bool]] = defaultdict(list)
    with (base / "annotations.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            votes[row["comment_id"]].append(row["not toxic"] == "True")
    texts, labels = [], []
    with (base / "comments.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            v = votes.get(row["comment_id"])
            if v:
                texts.append(row["comment_text"])
                labels.append(int(sum(v) / len(v) < 0.5))
    return Labelled(texts, labels, "toxic-spans (Civil Comments, CC0)")


def _davidson(root: Path, label: str, positive: set[str]) -> Labelled:
    _need(root, label)
    texts, labels = [], []
    path = root / "moderation/davidson-hate-speech/labeled_data.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            texts.append(row["tweet"])
            labels.append(int(row["class"] in positive))
    return Labelled(texts, labels, "Davidson et al. 2017 (MIT)")


def spam(root: Path) -> Labelled:
    _need(root, "spam")
    texts, labels = [], []
    for path in sorted((root / "moderation/youtube-spam-collection").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                texts.append(row["CONTENT"])
                labels.append(int(row["CLASS"] == "1"))
    sms = root / "moderation/sms-spam-collection/SMSSpamCollection"
    for line in sms.read_text(encoding="utf-8", errors="replace").splitlines():
        tag, _, text = line.partition("\t")
        if text:
            texts.append(text)
            labels.append(int(tag == "spam"))
    return Labelled(texts, labels, "YouTube Spam Collection + SMS Spam Collection (UCI, CC BY 4.0)")


def load(root: Path, label: str) -> Labelled:
    if label == "toxicity":
        return toxicity(root)
    if label == "hate":
        return _davidson(root, label, {"0"})
    if label == "offensive":
        return _davidson(root, label, {"0", "1"})
    if label == "spam":
        return spam(root)
    raise InvalidInput(f"unknown label {label!r}: one of {', '.join(LABELS)}")
