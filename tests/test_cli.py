"""The command line: init, status, serve, and errors that name the problem."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from carveout.cli.main import app
from carveout.storage import schema_head

runner = CliRunner()


def test_init_then_status(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = runner.invoke(app, ["init", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    assert (data / "policy.toml").is_file()
    assert (data / "cells" / "global" / "cell.db").is_file()
    again = runner.invoke(app, ["init", "--data-dir", str(data)])
    assert again.exit_code == 0
    status = runner.invoke(app, ["status", "--data-dir", str(data)])
    assert status.exit_code == 0, status.output
    assert "cell global" in status.output
    assert "users" in status.output and f"schema: {schema_head()}" in status.output


def test_init_refuses_a_policy_mapping_one_jurisdiction_to_two_cells(tmp_path: Path) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text(
        "version = 1\n[sites.us]\n"
        '[cells.a]\njurisdictions = ["US"]\nprimary_site = "us"\n'
        '[cells.b]\njurisdictions = ["US", "*"]\nprimary_site = "us"\n'
    )
    data = tmp_path / "data"
    r = runner.invoke(app, ["init", "--data-dir", str(data), "--policy", str(policy)])
    assert r.exit_code == 1
    assert "US is mapped to two cells" in r.output
    assert not (data / "policy.toml").exists()
    assert not (data / "cells").exists()


def test_status_without_init_says_what_to_do(tmp_path: Path) -> None:
    r = runner.invoke(app, ["status", "--data-dir", str(tmp_path / "nothing")])
    assert r.exit_code == 1
    assert "carveout init" in r.output
    assert "Traceback" not in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_http(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert runner.invoke(app, ["init", "--data-dir", str(data)]).exit_code == 0
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carveout.cli.main",
            "serve",
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert r.status_code == 200
        assert r.json()["cells"] == {"global": ["*"]}
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_carve_reseal_with_no_carve_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert runner.invoke(app, ["init", "--data-dir", str(data)]).exit_code == 0
    r = runner.invoke(app, ["carve", "reseal", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    assert "nothing to reseal" in r.output
