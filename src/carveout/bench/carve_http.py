"""A lean HTTP/1.1 keep-alive client for the carve bench's load generator.

httpx spent about 5 ms of CPU per request in the load process (its pool scans every connection
per request), more than the server under test spent answering it; on a 2-core machine the client
took the CPU the server needed. This client does only what the load needs: JSON requests over a
pool of kept-alive connections to one server, responses framed by Content-Length or chunked.
A request is never retried (a write that may have landed must not be sent twice): a failure is
reported to the caller, whose ledger counts it as unsure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """The connection failed or the response was not HTTP/1.1 as expected."""


# What a broken connection or a garbled response raises on the way (ValueError: a bad number).
_FAILURES = (HttpError, OSError, EOFError, asyncio.LimitOverrunError, TimeoutError, ValueError)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class LeanClient:
    """`await request(method, path, json=..., headers=...)` -> Response; `aclose()` at the end.

    Idle connections older than `keepalive_s` are closed instead of reused: the server (uvicorn:
    5 s) may close one just as a request goes out on it, which would fail a write for nothing."""

    def __init__(self, base_url: str, timeout_s: float, keepalive_s: float = 2.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host:port URLs, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self._idle: list[_Conn] = []
        self._host_header = f"{self.host}:{self.port}".encode("ascii")

    async def _connection(self) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # most recently used first: the freshest
            if now - conn.idle_since < self.keepalive_s and not conn.reader.at_eof():
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Conn(reader, writer)

    async def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = b"" if json_body is None else json.dumps(json_body).encode("utf-8")
        head = [f"{method} {path} HTTP/1.1".encode("ascii"), b"Host: " + self._host_header]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}".encode("latin-1"))
        if json_body is not None:
            head.append(b"Content-Type: application/json")
        head.append(b"Content-Length: " + str(len(body)).encode("ascii"))
        payload = b"\r\n".join(head) + b"\r\n\r\n" + body
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await self._connection()
                conn.writer.write(payload)
                response, keep = await _read_response(conn.reader)
        except _FAILURES as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, HttpError):
                raise
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if keep:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        return response

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """One response; True when the connection may be reused."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw[:-4].split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise HttpError(f"not an HTTP/1.x response: {lines[0]!r}")
    status = int(status_line[1])
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    keep = fields.get(b"connection", b"").lower() != b"close"
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent by our server
                break
            parts.append(await reader.readexactly(size + 2))
        body = b"".join(p[:-2] for p in parts)
    elif b"content-length" in fields:
        body = await reader.readexactly(int(fields[b"content-length"]))
    else:
        body = await reader.read()  # framed by the connection's end
        keep = False
    return Response(status, body), keep
