"""The upload pipeline: validate, hash frames, match banks, classify the caption, decide, store."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout import videos
from carveout.accounts import User
from carveout.cells import Cell
from carveout.core.text import check_text
from carveout.moderation.banks import matcher
from carveout.moderation.classifier import Score, cell_model
from carveout.moderation.decide import bank_findings, combine, text_findings
from carveout.moderation.decisions import apply_to_video, insert_decision, open_review
from carveout.moderation.models import Decision, Source, TargetKind, Verdict, Visibility
from carveout.moderation.rules import Rules, load_rules
from carveout.moderation.vpdq import VideoHash, hash_video
from carveout.videos.service import check_new_video


@dataclass(frozen=True)
class Moderated:
    video: videos.Video
    decision: Decision


@dataclass(frozen=True)
class Screening:
    verdict: Verdict
    frames: VideoHash | None
    scores: list[Score]


def served(cell: Cell) -> tuple[str, ...]:
    """The cell's jurisdictions as a DSA territorial scope ('*': every one it serves)."""
    return tuple(cell.spec.jurisdictions) + (("*",) if cell.spec.serves_rest else ())


def screen_text(cell: Cell, text: str, field: str, rules: Rules | None = None) -> Screening:
    """Classify a caption or comment with the cell's model (no model: nothing to find)."""
    rules = rules or load_rules(cell.root)
    model = cell_model(cell.root)
    scores = model.classify(text) if model is not None and text.strip() else []
    verdict = combine(text_findings(scores, rules, field), served(cell))
    signals = {
        "text": {s.label: round(s.score, 4) for s in scores},
        "classifier": "trained" if model is not None else "none: run `carveout moderation train`",
    }
    return Screening(replace(verdict, signals=signals), None, scores)


def screen_video(
    cell: Cell, path: Path, caption: str, frames: VideoHash | None = None
) -> Screening:
    """`frames`: the file's hashes when the caller has them (the content exchange screens many
    videos that share one media file, and hashing is the expensive part)."""
    rules = load_rules(cell.root)
    frames = frames if frames is not None else hash_video(path)
    matches = matcher(cell.store).match(frames.hexes)
    text = screen_text(cell, caption, "caption", rules)
    findings = bank_findings(matches, rules.match_share)
    findings += text_findings(text.scores, rules, "caption")
    verdict = combine(findings, served(cell))
    signals: dict[str, Any] = {
        **text.verdict.signals,
        "frames_decoded": frames.decoded,
        "frames_sampled": frames.sampled,
        "frames_hashed": len(frames.frames),
        "match_share_required": rules.match_share,
        "banks": {m.bank.name: [m.frames_matched, m.best_distance] for m in matches},
    }
    if frames.sampled and not frames.frames:
        signals["note"] = "no frame reached PDQ quality 50: banks could not be matched"
    return Screening(replace(verdict, signals=signals), frames, text.scores)


def upload_video(cell: Cell, creator: User, new: videos.NewVideo, path: Path) -> Moderated:
    """Check and decide before anything is stored; then the video, its decision and (when held)
    its review item are written in one transaction."""
    started = time.perf_counter()
    check_text(new.caption, "caption")
    new = check_new_video(new)
    videos.probe(path)
    screening = screen_video(cell, path, new.caption)
    verdict = replace(
        screening.verdict,
        signals={
            **screening.verdict.signals,
            "screen_ms": round((time.perf_counter() - started) * 1000),
        },
    )
    stored: list[Decision] = []

    def record(conn: sa.Connection, video: videos.Video) -> None:

        decision = insert_decision(
            conn,
            verdict=verdict,
            domicile=video.domicile,
            subject_id=video.creator_id,
            target_kind=TargetKind.VIDEO,
            target_id=video.id,
            content_date=video.created_at,
            source=Source.AUTOMATED,
            automated=True,
        )
        apply_to_video(conn, video.id, video.domicile, verdict)
        if verdict.visibility is Visibility.HELD:
            open_review(
                conn,
                domicile=video.domicile,
                subject_id=video.creator_id,
                origin=Source.AUTOMATED,
                target_kind=TargetKind.VIDEO,
                target_id=video.id,
                decision_id=decision.id,
                filed_by=None,
                note=verdict.facts[:1000],
            )
        stored.append(decision)

    status = videos.VideoStatus(
        {"published": "published", "restricted": "published", "held": "processing"}.get(
            verdict.visibility.value, "rejected"
        )
    )
    video = videos.upload(cell, creator, new, path, status=status, on_stored=record)
    return Moderated(replace(video, status=status.value), stored[0])
