"""The carve bench's lean HTTP client against a real socket server: framing, keep-alive, errors."""

from __future__ import annotations

import asyncio

import pytest

from carveout.bench.carve_http import HttpError, LeanClient

RESPONSES = {
    b"/length": b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"a": true}',
    b"/chunked": (
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
        b'4\r\n{"b"\r\n3\r\n: 2\r\n1\r\n}\r\n0\r\n\r\n'
    ),
    b"/close": b"HTTP/1.1 503 Busy\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno",
    b"/garbage": b"SMTP ready\r\n\r\n",
    b"/hang": b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
}


async def _serve(seen: list[tuple[bytes, bytes]], connections: list[int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1]
            length = next(
                int(line.split(b":")[1])
                for line in lines
                if line.lower().startswith(b"content-length")
            )
            seen.append((lines[0], await reader.readexactly(length)))
            if path == b"/hang":
                await asyncio.sleep(5)
            writer.write(RESPONSES[path])
            await writer.drain()
            if path in (b"/close", b"/garbage"):
                break
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_framing_keep_alive_and_failures() -> None:
    async def main() -> None:
        seen: list[tuple[bytes, bytes]] = []
        connections: list[int] = []
        server = await _serve(seen, connections)
        port = server.sockets[0].getsockname()[1]
        client = LeanClient(f"http://127.0.0.1:{port}", timeout_s=0.5)
        got = await client.request("POST", "/length", {"x": 1}, {"Authorization": "Bearer t"})
        assert (got.status, got.json()) == (200, {"a": True})
        assert seen[0] == (b"POST /length HTTP/1.1", b'{"x": 1}')
        got = await client.request("PUT", "/chunked")
        assert (got.status, got.json()) == (201, {"b": 2})
        assert seen[1] == (b"PUT /chunked HTTP/1.1", b"")
        assert len(connections) == 1  # the first connection was kept alive and reused
        got = await client.request("GET", "/close")
        assert (got.status, got.text) == (503, "no")
        await client.request("GET", "/length")
        assert len(connections) == 2  # the server closed the last one: a new connection
        with pytest.raises(HttpError, match="not an HTTP"):
            await client.request("GET", "/garbage")
        with pytest.raises(HttpError, match="TimeoutError"):
            await client.request("GET", "/hang")
        await client.aclose()
        server.close()
        await server.wait_closed()
        with pytest.raises(HttpError, match=r"ConnectionRefused|OSError"):
            await client.request("GET", "/length")

    asyncio.run(main())
