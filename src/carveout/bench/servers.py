"""HTTP servers under test: one uvicorn process per app, on 127.0.0.1, stopped for sure."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from carveout.core import CarveoutError
from carveout.storage.pgcluster import free_port

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# One worker, quiet logs: `carveout serve`'s defaults, and the same for both apps.
UVICORN_ARGS = ("--workers", "1", "--log-level", "warning", "--no-access-log")


class ServerFailed(CarveoutError):
    """A server under test did not come up; the message holds the end of its log."""


# Looked up once here, not in the forked child, where only async-signal-safe work belongs.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the bench dies, even by SIGKILL (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class UvicornServer:
    """`python -m uvicorn <app>` in a subprocess; `url` once it answers `ready_path`."""

    def __init__(self, app: str, ready_path: str, env: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.ready_path = ready_path
        self.env = {**os.environ, **(env or {})}
        self.url = ""
        self.pid = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def __enter__(self) -> UvicornServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        fd, name = tempfile.mkstemp(prefix="carveout-bench-server-", suffix=".log")
        os.close(fd)
        self._log = Path(name)
        try:
            for attempt in range(attempts):
                port = free_port()
                try:
                    self._spawn(port)
                    self._wait_ready(port)
                    return
                except ServerFailed:
                    self.stop(keep_log=True)
                    # The probed port may have been taken before uvicorn bound it: try another.
                    if attempt == attempts - 1:
                        raise
        except BaseException:
            self.stop()
            raise

    def stop(self, *, keep_log: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not keep_log and self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, port: int) -> None:
        assert self._log is not None
        argv = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1"]
        argv += ["--port", str(port), *UVICORN_ARGS]
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.pid = self._proc.pid
        self.url = f"http://127.0.0.1:{port}"

    def _wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        url = f"http://127.0.0.1:{port}{self.ready_path}"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise ServerFailed(f"{self.app} exited while starting:\n{self._tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise ServerFailed(f"{self.app} did not answer {url} in {START_TIMEOUT_S:.0f} s")

    def log_text(self) -> str:
        """Everything the server wrote so far (its tracebacks, at our log level): read it before
        stop(), which deletes the file."""
        if self._log is None or not self._log.is_file():
            return ""
        return self._log.read_text(errors="replace")

    def _tail(self) -> str:
        return self.log_text()[-4000:]


ASGI_EXCEPTION = "Exception in ASGI application"


def tracebacks(log: str) -> list[str]:
    """The blocks of a server log that uvicorn opens with "Exception in ASGI application"."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if ASGI_EXCEPTION in line]
    if not starts:
        return []
    ends = [*starts[1:], len(lines)]
    return ["\n".join(lines[a:b]) for a, b in zip(starts, ends, strict=True)]


def server_errors(log: str, limit: int = 12000) -> str:
    """The tracebacks in a server log, the first ones up to about `limit` characters; the
    log's end when it holds no traceback (e.g. only 503s, which are answers, not crashes)."""
    blocks = tracebacks(log)
    if not blocks:
        return log[-limit:]
    kept = [blocks[0][:limit]]
    for block in blocks[1:]:
        if sum(map(len, kept)) + len(block) > limit:
            kept.append(f"[{len(blocks) - len(kept)} more tracebacks in the full log]")
            break
        kept.append(block)
    return "\n".join(kept)
