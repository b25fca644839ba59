"""Per-cell moderation rules (a TOML file in the cell's folder): what each label does, and where."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carveout.core import PolicyError, parse_jurisdictions
from carveout.moderation.models import CATEGORIES, Action, Ground

RULES_FILE = "moderation.toml"
DEFAULT_MATCH_SHARE = 0.2

# Defaults an operator replaces by writing moderation.toml in the cell's folder. The `offensive`
# rule is an example of a jurisdiction-specific rule, not legal advice about any country.
DEFAULT_TEXT = """
match_share = 0.2   # share of sampled frames that must match a bank for a video match

[[rule]]
label = "spam"
action = "reject"
ground = "terms"
rule = "Community guidelines: spam and scams"
category = "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"

[[rule]]
label = "hate"
action = "hold"
ground = "terms"
rule = "Community guidelines: hateful conduct"
category = "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH"

[[rule]]
label = "toxicity"
action = "hold"
ground = "terms"
rule = "Community guidelines: harassment"
category = "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH"

[[rule]]
label = "offensive"
action = "restrict"
jurisdictions = ["SG"]
ground = "illegal"
rule = "example jurisdiction rule: offensive language restricted in SG"
category = "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH"
"""


@dataclass(frozen=True)
class Rule:
    label: str
    action: Action
    ground: Ground
    rule: str
    category: str
    jurisdictions: tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    match_share: float
    rules: tuple[Rule, ...]

    def for_label(self, label: str) -> list[Rule]:
        return [r for r in self.rules if r.label == label]


def _rule(raw: dict[str, Any], n: int) -> Rule:
    try:
        action, ground = Action(raw["action"]), Ground(raw.get("ground", "terms"))
        label, text, category = raw["label"], raw["rule"], raw.get("category", "")
    except (KeyError, ValueError) as exc:
        raise PolicyError(f"{RULES_FILE}: rule {n}: {exc}") from exc
    if category not in CATEGORIES:
        raise PolicyError(f"{RULES_FILE}: rule {n}: unknown DSA category {category!r}")
    listed = raw.get("jurisdictions", [])
    where = tuple(parse_jurisdictions(listed)) if listed else ()
    if action is Action.RESTRICT and not where:
        raise PolicyError(f"{RULES_FILE}: rule {n}: restrict needs jurisdictions")
    return Rule(str(label), action, ground, str(text), str(category), where)


def parse_rules(text: str) -> Rules:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{RULES_FILE}: {exc}") from exc
    share = float(raw.get("match_share", DEFAULT_MATCH_SHARE))
    if not 0 < share <= 1:
        raise PolicyError(f"{RULES_FILE}: match_share must be in (0, 1]")
    rules = tuple(_rule(r, i + 1) for i, r in enumerate(raw.get("rule", [])))
    # A `moderators` list left from before staff roles is ignored, like any unknown key: it
    # grants nothing (moderators hold the role in the cell's staff_roles), so it fails closed.
    return Rules(share, rules)


# Rules are immutable and a function of the file's text: every comment and caption is screened
# with them, and parsing the TOML each time was ~0.5 ms of a comment's ~3 ms on the server.
_parsed = functools.lru_cache(maxsize=32)(parse_rules)


def load_rules(cell_root: Path) -> Rules:
    """The cell's rules as its file says now (read each time, so an edit applies at once)."""
    path = cell_root / RULES_FILE
    return _parsed(path.read_text(encoding="utf-8") if path.exists() else DEFAULT_TEXT)
