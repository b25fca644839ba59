"""A bench's server under test keeps the tracebacks of the 5xx it answered, for the report."""

from __future__ import annotations

from pathlib import Path

import httpx

from carveout.bench.carve_bench import BackendRun, CarveBenchConfig, CarveBenchResult
from carveout.bench.carve_report import save_server_logs
from carveout.bench.servers import UvicornServer, server_errors, tracebacks

# A bare ASGI app (no framework): /ready answers, /boom raises, as a bug in a route would.
CRASHING_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/boom":
        raise RuntimeError("boom: the cause a bench must not lose")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def test_a_server_that_answered_500_still_has_its_traceback_before_it_stops(
    tmp_path: Path,
) -> None:
    (tmp_path / "crashing_app.py").write_text(CRASHING_APP, encoding="utf-8")
    with UvicornServer("crashing_app:app", "/ready", env={"PYTHONPATH": str(tmp_path)}) as server:
        assert httpx.get(f"{server.url}/boom").status_code == 500
        log = server.log_text()
    assert "RuntimeError: boom: the cause a bench must not lose" in log
    [block] = tracebacks(log)
    assert "Exception in ASGI application" in block.splitlines()[0]
    assert block.rstrip().endswith("RuntimeError: boom: the cause a bench must not lose")
    assert server.log_text() == ""  # stopping removed the file, as before


def test_server_errors_keeps_the_first_tracebacks_and_says_how_many_more() -> None:
    one = "ERROR:    Exception in ASGI application\nTraceback (most recent call last):\n"
    log = "INFO:     started\n" + "".join(f"{one}  ...\nValueError: {i}\n" for i in range(50))
    kept = server_errors(log, limit=400)
    assert kept.startswith("ERROR:    Exception in ASGI application")
    assert "ValueError: 0" in kept and "ValueError: 49" not in kept
    assert kept.rstrip().endswith("more tracebacks in the full log]")
    # No traceback (only 503 answers, say): the log's end, which says what there is.
    assert server_errors("INFO:     a\nWARNING:  b\n", limit=12) == "WARNING:  b\n"


def test_the_carve_bench_saves_a_server_log_with_5xx_beside_its_json(tmp_path: Path) -> None:
    config = CarveBenchConfig(tmp_path, backends=("sqlite", "postgresql"))
    log = "ERROR:    Exception in ASGI application\nTraceback ...\nValueError: x\n"
    runs = [BackendRun("sqlite"), BackendRun("postgresql", server_log=log)]
    saved = save_server_logs(CarveBenchResult(config, runs), tmp_path / "out" / "carve.json")
    assert saved == {"postgresql": tmp_path / "out" / "carve.postgresql.server.log"}
    assert saved["postgresql"].read_text() == log
