"""From signals to a verdict: bank matches and classifier bands, combined by the cell's rules."""

from __future__ import annotations

from collections.abc import Sequence

from carveout.moderation.classifier import Score
from carveout.moderation.models import (
    SEVERITY,
    BankMatch,
    Finding,
    Ground,
    Verdict,
    Visibility,
)
from carveout.moderation.rules import Rules


def bank_findings(matches: Sequence[BankMatch], share: float) -> list[Finding]:
    found = []
    for m in matches:
        if m.share < share:
            continue
        where = (m.bank.domicile,) if m.bank.action.visibility is Visibility.RESTRICTED else ()
        found.append(
            Finding(
                m.bank.action.visibility,
                m.bank.ground,
                f"hash bank {m.bank.name}",
                m.bank.category,
                where,
                f"{m.frames_matched} of {m.frames_total} sampled frames match hash bank "
                f"{m.bank.name!r} (closest distance {m.best_distance} bits)",
            )
        )
    return found


def text_findings(scores: Sequence[Score], rules: Rules, field: str) -> list[Finding]:
    found = []
    for s in scores:
        fact = f"{field} scored {s.score:.3f} for {s.label}"
        if s.band == "review":
            found.append(
                Finding(
                    Visibility.HELD,
                    Ground.NONE,
                    f"classifier {s.label}: uncertain, human review",
                    "STATEMENT_CATEGORY_NONE",
                    (),
                    fact + " (below the automatic threshold: held for review)",
                )
            )
        elif s.band == "auto":
            for r in rules.for_label(s.label) or []:
                found.append(
                    Finding(
                        r.action.visibility,
                        r.ground,
                        r.rule,
                        r.category,
                        r.jurisdictions,
                        fact + " (over the threshold measured at precision >= 0.95)",
                    )
                )
    return found


def combine(findings: Sequence[Finding], jurisdictions_served: Sequence[str]) -> Verdict:
    """The strictest finding decides; restrictions from several findings add up."""
    if not findings:
        return Verdict(
            Visibility.PUBLISHED, Ground.NONE, "", "STATEMENT_CATEGORY_NONE", (), "no finding"
        )
    top = max(findings, key=lambda f: SEVERITY[f.visibility])
    if top.visibility is Visibility.RESTRICTED:
        scope = tuple(sorted({j for f in findings for j in f.jurisdictions}))
    else:
        scope = tuple(jurisdictions_served)
    deciding = [f for f in findings if f.visibility is top.visibility]
    return Verdict(
        visibility=top.visibility,
        ground=top.ground,
        rule="; ".join(dict.fromkeys(f.rule for f in deciding)),
        category=top.category,
        territorial_scope=scope,
        facts="; ".join(f.fact for f in findings),
    )
