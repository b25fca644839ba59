"""Moderation vocabulary: outcomes, grounds, banks, matches and decisions with their reasons."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Visibility(StrEnum):
    """What a decision does to the content (DSA `decision_visibility`, simplified)."""

    PUBLISHED = "published"
    RESTRICTED = "restricted"  # unavailable in the decision's territorial scope only
    HELD = "held"  # unavailable everywhere until a reviewer decides
    REJECTED = "rejected"  # removed everywhere


# When signals disagree the strictest wins, in this order.
SEVERITY = {
    Visibility.PUBLISHED: 0,
    Visibility.RESTRICTED: 1,
    Visibility.HELD: 2,
    Visibility.REJECTED: 3,
}


class Action(StrEnum):
    """What a bank match or a rule asks for."""

    RESTRICT = "restrict"
    HOLD = "hold"
    REJECT = "reject"

    @property
    def visibility(self) -> Visibility:
        return {
            Action.RESTRICT: Visibility.RESTRICTED,
            Action.HOLD: Visibility.HELD,
            Action.REJECT: Visibility.REJECTED,
        }[self]


class Ground(StrEnum):
    NONE = "none"
    ILLEGAL = "illegal"  # DSA DECISION_GROUND_ILLEGAL_CONTENT
    TERMS = "terms"  # DSA DECISION_GROUND_INCOMPATIBLE_CONTENT


class Source(StrEnum):
    AUTOMATED = "automated"  # DSA SOURCE_VOLUNTARY (own-initiative detection)
    REPORT = "report"  # DSA SOURCE_ARTICLE_16 (notice by a user)
    APPEAL = "appeal"
    REVIEWER = "reviewer"


class TargetKind(StrEnum):
    VIDEO = "video"
    COMMENT = "comment"


# DSA transparency-database statement categories this service uses.
CATEGORIES = frozenset(
    {
        "STATEMENT_CATEGORY_NONE",
        "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
        "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
        "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "STATEMENT_CATEGORY_VIOLENCE",
        "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
        "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
        "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE",
        "STATEMENT_CATEGORY_UNSAFE_AND_ILLEGAL_PRODUCTS",
        "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT",
        "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
        "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
        "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
        "STATEMENT_CATEGORY_ANIMAL_WELFARE",
    }
)


@dataclass(frozen=True)
class Bank:
    id: str
    name: str
    domicile: str
    description: str
    action: Action
    ground: Ground
    category: str
    enabled: bool
    hashes: int = 0

    @classmethod
    def from_row(cls, row: Any, hashes: int = 0) -> Bank:
        return cls(
            id=row.id,
            name=row.name,
            domicile=row.domicile,
            description=row.description,
            action=Action(row.action),
            ground=Ground(row.ground),
            category=row.category,
            enabled=bool(row.enabled),
            hashes=hashes,
        )


@dataclass(frozen=True)
class BankMatch:
    bank: Bank
    frames_matched: int
    frames_total: int
    best_distance: int

    @property
    def share(self) -> float:
        return self.frames_matched / self.frames_total if self.frames_total else 0.0


@dataclass(frozen=True)
class Finding:
    """One reason to act: a bank match or a classifier score over its automatic threshold."""

    visibility: Visibility
    ground: Ground
    rule: str
    category: str
    jurisdictions: tuple[str, ...] = ()  # for RESTRICTED: where
    fact: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of automated checks, before it is stored."""

    visibility: Visibility
    ground: Ground
    rule: str
    category: str
    territorial_scope: tuple[str, ...]
    facts: str
    signals: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """A stored decision with the EU DSA statement-of-reasons fields."""

    id: str
    domicile: str
    subject_id: str
    target_kind: str
    target_id: str
    visibility: str
    ground: str
    rule: str
    category: str
    territorial_scope: list[str]
    automated_detection: bool
    automated_decision: bool
    source: str
    facts: str
    signals: dict[str, Any]
    reviewer_id: str | None
    supersedes: str | None
    content_date: int
    created_at: int

    @classmethod
    def from_row(cls, row: Any) -> Decision:
        m = row._mapping
        return cls(
            **{
                **{k: m[k] for k in m.keys()},  # noqa: SIM118 - RowMapping is not a dict
                "territorial_scope": json.loads(m["territorial_scope"]),
                "signals": json.loads(m["signals"]),
                "automated_detection": bool(m["automated_detection"]),
                "automated_decision": bool(m["automated_decision"]),
            }
        )
