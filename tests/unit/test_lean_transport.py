"""The lean upstream transport against tiny raw HTTP servers: framing, reuse, dead idle connections,
timeouts and errors mapped to httpx2's exception types."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx2
import pytest

from server.providers.transport import LeanTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def test_content_length_and_chunked_bodies_and_keep_alive_reuse() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                request = await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if b"/chunked" in request:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
            else:
                writer.write(b'HTTP/1.1 201 Created\r\nContent-Length: 7\r\nX-Test: yes\r\n\r\n{"a":1}')
            await writer.drain()

    async def scenario() -> None:
        server, url = await _serve(handler)
        async with httpx2.AsyncClient(transport=LeanTransport(), base_url=url) as client:
            first = await client.post("/json", content=b'{"q": 1}')
            assert (first.status_code, first.json(), first.headers["x-test"]) == (201, {"a": 1}, "yes")
            second = await client.get("/chunked")
            assert second.text == "hello world"
        server.close()
        assert connections == 1  # both requests on one kept-alive connection

    asyncio.run(scenario())


def test_a_dead_idle_connection_is_replaced_transparently() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # the server drops keep-alive connections after one request

    async def scenario() -> None:
        server, url = await _serve(handler)
        async with httpx2.AsyncClient(transport=LeanTransport(), base_url=url) as client:
            for _ in range(3):
                assert (await client.post("/x", content=b"{}")).text == "ok"
        server.close()

    asyncio.run(scenario())


def test_streamed_response_arrives_piece_by_piece() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for n in range(3):
            event = b"data: %d\n\n" % n
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        server, url = await _serve(handler)
        async with (
            httpx2.AsyncClient(transport=LeanTransport(), base_url=url) as client,
            client.stream("POST", "/s", content=b"{}") as response,
        ):
            pieces = [piece async for piece in response.aiter_bytes()]
        server.close()
        assert pieces == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]

    asyncio.run(scenario())


def test_errors_map_to_httpx2_exceptions() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with httpx2.AsyncClient(transport=LeanTransport(), timeout=httpx2.Timeout(1.0, read=0.2)) as client:
            with pytest.raises(httpx2.ConnectError):
                await client.get("http://127.0.0.1:9/")
            server, url = await _serve(silent)
            with pytest.raises(httpx2.ReadTimeout):
                await client.post(url, content=b"{}")
            server.close()
            server, url = await _serve(truncated)
            with pytest.raises(httpx2.RemoteProtocolError):
                await client.post(url, content=b"{}")
            server.close()

    asyncio.run(scenario())
