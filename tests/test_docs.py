"""Docs are checked: every API route and CLI command is documented; the README has two commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from carveout.api import create_app
from carveout.cells import init_data_dir
from carveout.cli.main import app as cli_app

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: Any, prefix: str = "carveout") -> list[str]:
    # Typer vendors its own click; walk groups by their `commands` mapping.
    if getattr(group, "commands", None):
        out: list[str] = []
        for name, sub in group.commands.items():
            out += _commands(sub, f"{prefix} {name}")
        return out
    return [prefix]


def test_every_api_route_is_documented(tmp_path: Path) -> None:
    app = create_app(init_data_dir(tmp_path / "d"))
    doc = (ROOT / "docs" / "api.md").read_text()
    routes = [
        f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items() for method in ops
    ]
    assert len(routes) > 20
    missing = [r for r in routes if f"`{r}`" not in doc]
    assert missing == []
    documented = re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /v1[^`]*)`", doc)
    assert sorted(set(documented) - set(routes)) == [], "docs/api.md names routes that do not exist"


def test_every_cli_command_is_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    commands = _commands(typer.main.get_command(cli_app))
    assert {"carveout init", "carveout serve", "carveout status", "carveout load kuairec"} <= set(
        commands
    )
    missing = [c for c in commands if f"## `{c}`" not in doc]
    assert missing == []


def test_readme_first_screen_gives_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert first_block is not None
    commands = [ln.split("#")[0].strip() for ln in first_block.group(1).splitlines()]
    lines = [c for c in commands if c]
    assert lines == ["./dev demo", "./dev test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci
