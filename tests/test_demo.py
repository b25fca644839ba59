"""`carveout demo` end to end: a real server, real traffic, a live carve, a clean summary."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carveout.cli.main import app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_carves_live_with_no_lost_writes_and_no_leaks(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    r = CliRunner().invoke(
        app, ["demo", "--no-serve", "--data-dir", str(data), "--port", str(_free_port())]
    )
    assert r.exit_code == 0, r.output
    rows = {}
    for line in r.output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert rows["lost / duplicated writes"] == "0 / 0"
    assert rows["leaks found in na-anz"] == "0"
    assert rows["rows of US/CA/AU/NZ left in global"] == "0"
    assert re.fullmatch(r"[\d,]+ / 0", rows["writes acknowledged / failed"])
    assert rows["verify"].endswith(" 0 mismatches")
    copies = re.fullmatch(
        r"([\d,]+) from global, 0 failed", rows["guest copies (content exchange)"]
    )
    assert copies and int(copies.group(1).replace(",", "")) > 0
    assert (data / "cells" / "na-anz" / "cell.db").is_file()
    # A second run replaces its own folder; a folder that is not a demo is refused.
    other = tmp_path / "mine"
    other.mkdir()
    refused = CliRunner().invoke(app, ["demo", "--no-serve", "--data-dir", str(other)])
    assert refused.exit_code == 1 and "not a demo folder" in refused.output
