"""One HTTP/1.1 keep-alive client connection on ``asyncio.Protocol``, with a hand-rolled parser.

The request is prebuilt bytes, written in one call; the response parser is an explicit state
machine (status line and headers, then a Content-Length body or a chunked one with trailers).
With ``watch_data`` it notes when the first SSE ``data:`` bytes of the body arrived
(``first_data_t``, a ``time.perf_counter`` value), for time-to-first-chunk figures.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

perf = time.perf_counter
HEAD, FIXED, CHUNK_SIZE, CHUNK_DATA, TRAILERS = range(5)


class Conn(asyncio.Protocol):
    """One keep-alive client connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fut: asyncio.Future[tuple[int, bytes]] | None = None
        self.state = HEAD
        self.status = 0
        self.remaining = 0
        self.body = bytearray()
        self.keep_alive = True
        self.watch_data = False
        self.first_data_t = 0.0
        self.sent = 0  # requests sent on this connection
        self.received = 0  # response bytes received for the current request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(exc or ConnectionResetError("connection closed by server"))

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    @property
    def stale(self) -> bool:
        """A reused connection closed before any answer: the server dropped it while idle."""
        return self.sent > 1 and self.received == 0

    def request(self, raw: bytes, watch_data: bool = False) -> asyncio.Future[tuple[int, bytes]]:
        """Send a prebuilt request; the future gives (status, body)."""
        assert self.transport is not None and self.fut is None
        self.fut = asyncio.get_running_loop().create_future()
        self.state, self.body, self.watch_data, self.first_data_t = HEAD, bytearray(), watch_data, 0.0
        self.sent += 1
        self.received = 0
        self.transport.write(raw)
        return self.fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.fut is None:  # unsolicited bytes: the connection is no longer trustworthy
            self.close()
            return
        self.buf += data
        self.received += len(data)
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self._fail(ValueError(f"bad response: {exc}"))

    def _fail(self, exc: Exception) -> None:
        fut, self.fut = self.fut, None
        self.close()
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def _add_body(self, data: bytes | bytearray) -> None:
        self.body += data
        if self.watch_data and not self.first_data_t and b"data:" in self.body:
            self.first_data_t = perf()

    def _parse(self) -> None:
        buf = self.buf
        while True:
            if self.state == HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(buf[:end]).split(b"\r\n")
                del buf[: end + 4]
                version, status = lines[0].split(b" ", 2)[:2]
                self.status = int(status)
                if self.status < 200:  # 1xx interim answer: wait for the real one
                    continue
                self.keep_alive = version == b"HTTP/1.1"
                length, chunked = -1, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding":
                        chunked = b"chunked" in value.lower()
                    elif name == b"connection":
                        self.keep_alive = value.strip().lower() != b"close"
                if self.status in (204, 304):
                    self._done()
                    return
                if chunked:
                    self.state = CHUNK_SIZE
                elif length >= 0:
                    self.state, self.remaining = FIXED, length
                else:
                    raise ValueError("neither content-length nor chunked")
            elif self.state == FIXED:
                if len(buf) < self.remaining:
                    return
                self._add_body(buf[: self.remaining])
                del buf[: self.remaining]
                self._done()
                return
            elif self.state == CHUNK_SIZE:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
                del buf[: eol + 2]
                self.state, self.remaining = (TRAILERS, 0) if size == 0 else (CHUNK_DATA, size)
            elif self.state == CHUNK_DATA:
                if len(buf) < self.remaining + 2:
                    return
                self._add_body(buf[: self.remaining])
                del buf[: self.remaining + 2]
                self.state = CHUNK_SIZE
            else:  # TRAILERS: lines until an empty one
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                del buf[: eol + 2]
                if eol == 0:
                    self._done()
                    return

    def _done(self) -> None:
        fut, self.fut = self.fut, None
        if not self.keep_alive or self.buf:
            self.close()
        if fut is not None and not fut.done():
            fut.set_result((self.status, bytes(self.body)))
