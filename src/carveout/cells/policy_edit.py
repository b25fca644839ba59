"""Rewriting the residency policy: moving jurisdictions to a new cell, written atomically."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomli_w

from carveout.cells.policy import ANY, CellSpec, Policy, parse_policy
from carveout.core import PolicyError


def render_policy(policy: Policy) -> str:
    doc: dict[str, Any] = {
        "version": 1,
        "sites": {
            name: {"description": desc}
            | ({"path": policy.site_paths[name]} if name in policy.site_paths else {})
            | ({"s3": policy.site_s3[name].to_toml()} if name in policy.site_s3 else {})
            for name, desc in policy.sites.items()
        },
        "cells": {},
    }
    for spec in policy.cells:
        cell: dict[str, Any] = {
            "jurisdictions": list(spec.jurisdictions) + ([ANY] if spec.serves_rest else []),
            "primary_site": spec.primary_site,
        }
        if spec.backup_site is not None:
            cell["backup_site"] = spec.backup_site
        cell["content_exchange"] = spec.content_exchange
        cell["storage"] = spec.storage
        doc["cells"][spec.name] = cell
    header = "# carveout residency policy: every jurisdiction maps to exactly one cell.\n"
    return header + tomli_w.dumps(doc)


def with_new_cell(policy: Policy, target: CellSpec) -> Policy:
    """The policy after `target.jurisdictions` move out of whatever cells served them."""
    if target.name in policy.names:
        raise PolicyError(f"cell {target.name!r} already exists in the residency policy")
    moving = set(target.jurisdictions)
    cells = tuple(
        replace(s, jurisdictions=tuple(j for j in s.jurisdictions if j not in moving))
        for s in policy.cells
    )
    emptied = [s.name for s in cells if not s.jurisdictions and not s.serves_rest]
    if emptied:
        # A cell left serving nothing is a decision (retire it), not a side effect.
        raise PolicyError(f"the carve would leave cell(s) {emptied} serving no jurisdiction")
    result = Policy(
        cells=(*cells, target),
        sites=dict(policy.sites),
        site_paths=dict(policy.site_paths),
        site_s3=dict(policy.site_s3),
    )
    parse_policy(render_policy(result))  # the same checks as a hand-written policy
    return result


def write_policy_atomically(path: Path, policy: Policy) -> None:
    """Write to a temp file beside the policy, fsync, rename: readers see old or new, never half."""
    text = render_policy(policy)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".policy-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
