"""A lean HTTP/1.1 keep-alive transport for httpx2, used for upstream provider calls.

Why: profiling the gateway at 500 req/s showed httpcore2's pool spending most of the upstream
call's CPU on per-request bookkeeping (a readability poll of every idle connection, anyio stream
wrappers); this transport keeps httpx2 as the client API (requests, responses, content decoding,
the exception tree) and replaces only the connection layer: asyncio streams, one write per request,
a LIFO idle pool checked without syscalls, TLS through asyncio. It speaks exactly what provider APIs
need: HTTP/1.1, Content-Length or chunked bodies, streamed responses (SSE). No proxies, no HTTP/2.

Failure mapping (httpx2's own exception types, so callers see the same errors as with httpcore):
    refused / unreachable / TLS failure   → httpx2.ConnectError      (ConnectTimeout on timeout)
    no response bytes within `read`        → httpx2.ReadTimeout
    peer closed mid-message / bad framing  → httpx2.RemoteProtocolError
A request sent on a reused idle connection that the server had already closed is retried once on a
fresh connection when not a single response byte came back (the request was never processed).

A request whose body is a stream (a multipart upload re-sent from disk) is written chunk by chunk as it is
read, with the Content-Length its sender declared, on a fresh connection (a stream cannot be sent twice,
so it is never risked on an idle connection the server may have closed).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx2

_MAX_HEADER_BYTES = 64 * 1024


class _Connection:
    __slots__ = ("key", "reader", "writer")

    def __init__(self, key: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.key, self.reader, self.writer = key, reader, writer

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class _NotProcessed(Exception):
    """A reused connection was dead before any response byte: safe to send again."""


class LeanTransport(httpx2.AsyncBaseTransport):
    def __init__(self, max_connections: int = 200, max_idle: int = 16) -> None:
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url = request.url
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        streamed = not isinstance(request.stream, httpx2.ByteStream) and "content-length" in request.headers
        payload = _serialize(request, b"" if streamed else await request.aread())
        body = request.stream if streamed else None
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx2.PoolTimeout("no free connection to the provider", request=request) from None
        try:
            conn = None if streamed else self._take_idle(key)
            if conn is not None:
                try:
                    return await self._exchange(conn, payload, request, timeouts, reused=True)
                except _NotProcessed:
                    pass
            conn = await self._connect(key, request, timeouts.get("connect"))
            return await self._exchange(conn, payload, request, timeouts, reused=False, body=body)
        except BaseException:
            self._slots.release()
            raise

    async def aclose(self) -> None:
        for pool in self._idle.values():
            while pool:
                pool.pop().close()

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        pool = self._idle.get(key)
        while pool:
            conn = pool.pop()
            if conn.usable:
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection, reusable: bool) -> None:
        self._slots.release()
        pool = self._idle.setdefault(conn.key, deque())
        if reusable and conn.usable and len(pool) < self._max_idle:
            pool.append(conn)
        else:
            conn.close()

    async def _connect(self, key: tuple[str, str, int], request: httpx2.Request, timeout: float | None) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            self._ssl = self._ssl or ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host if context else None, limit=_MAX_HEADER_BYTES
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from None
        return _Connection(key, reader, writer)

    async def _send_body(self, conn: _Connection, body: Any, request: httpx2.Request, timeout: float | None) -> None:
        """A streamed body, chunk by chunk, each written once the socket drained the previous one (never more
        than the socket's buffer in memory); each wait is bounded by `write`."""
        try:
            async for chunk in body:
                conn.writer.write(chunk)
                async with asyncio.timeout(timeout):
                    await conn.writer.drain()
        except TimeoutError:
            conn.close()
            raise httpx2.WriteTimeout("the provider stopped reading the request body", request=request) from None
        except ConnectionError:
            conn.close()
            raise httpx2.RemoteProtocolError(
                "the provider closed the connection mid-request", request=request
            ) from None

    async def _exchange(
        self,
        conn: _Connection,
        payload: bytes,
        request: httpx2.Request,
        timeouts: dict[str, float | None],
        reused: bool,
        body: Any = None,
    ) -> httpx2.Response:
        read_timeout = timeouts.get("read")
        try:
            conn.writer.write(payload)
            if body is not None:
                await self._send_body(conn, body, request, timeouts.get("write"))
            async with asyncio.timeout(read_timeout):
                head = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            conn.close()
            raise httpx2.ReadTimeout("no response from the provider in time", request=request) from None
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            conn.close()
            if reused and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial):
                raise _NotProcessed from None
            raise httpx2.RemoteProtocolError(
                "the provider closed the connection without a response", request=request
            ) from None
        except asyncio.LimitOverrunError:
            conn.close()
            raise httpx2.RemoteProtocolError("response headers too large", request=request) from None
        status, headers = _parse_head(head, request)
        body = _Body(
            self, conn, headers, request, read_timeout, bodyless=request.method == "HEAD" or status in (204, 304)
        )
        return httpx2.Response(status, headers=headers, stream=body, extensions={"http_version": b"HTTP/1.1"})


def _serialize(request: httpx2.Request, content: bytes) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    has_length = False
    for name, value in request.headers.raw:
        if name.lower() == b"content-length":
            has_length = True
        if name.lower() == b"transfer-encoding":
            continue  # the body is always sent whole, with a Content-Length
        lines.append(name + b": " + value)
    if not has_length and (content or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % len(content))
    return b"\r\n".join(lines) + b"\r\n\r\n" + content


def _parse_head(head: bytes, request: httpx2.Request) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx2.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}", request=request)
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx2.RemoteProtocolError("malformed response header", request=request)
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


class _Body(httpx2.AsyncByteStream):
    """The response body as it arrives; the connection goes back to the pool once it is fully read."""

    def __init__(
        self,
        transport: LeanTransport,
        conn: _Connection,
        headers: list[tuple[bytes, bytes]],
        request: httpx2.Request,
        read_timeout: float | None,
        bodyless: bool,
    ) -> None:
        self._transport, self._conn, self._request, self._timeout = transport, conn, request, read_timeout
        found = {name.lower(): value for name, value in headers}
        self._chunked = b"chunked" in found.get(b"transfer-encoding", b"").lower()
        length = found.get(b"content-length")
        self._length: int | None = 0 if bodyless else (int(length) if length and length.isdigit() else None)
        self._keep_alive = b"close" not in found.get(b"connection", b"").lower()
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            if self._chunked:
                async for piece in self._read_chunked():
                    yield piece
            elif self._length is not None:
                remaining = self._length
                while remaining:
                    piece = await self._read(self._conn.reader.read(min(remaining, 65536)))
                    if not piece:
                        raise httpx2.RemoteProtocolError("peer closed connection mid-body", request=self._request)
                    remaining -= len(piece)
                    yield piece
            else:  # delimited by the connection closing
                self._keep_alive = False
                while piece := await self._read(self._conn.reader.read(65536)):
                    yield piece
            self._done = True
        except (asyncio.IncompleteReadError, ConnectionError):
            raise httpx2.RemoteProtocolError("peer closed connection mid-body", request=self._request) from None
        finally:
            await self.aclose()

    async def _read_chunked(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        while True:
            line = await self._read(reader.readuntil(b"\r\n"))
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await self._read(reader.readuntil(b"\r\n"))) != b"\r\n":
                    pass  # trailers
                return
            data = await self._read(reader.readexactly(size + 2))
            yield data[:-2]

    async def _read(self, awaitable: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await awaitable
        except TimeoutError:
            raise httpx2.ReadTimeout("the provider went silent", request=self._request) from None

    async def aclose(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        self._transport._release(conn, self._done and self._keep_alive)
