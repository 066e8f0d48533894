"""The connection guard's pieces: the real protocol class on the installed uvicorn, fed bytes directly.

A stand-in transport records what the server wrote; deadlines are real loop timers of a few tenths
of a second. The end-to-end behaviour (a real `gatewayctl serve`) is in tests/e2e/test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from server.http_guard.connections import ConnectionTable, is_reserved
from server.http_guard.fd_limit import SPARE_DESCRIPTORS, fit_connection_cap
from server.http_guard.protocol import EdgeLimits, GuardedHttpToolsProtocol, guarded_protocol

LIMITS = EdgeLimits(
    header_timeout_s=0.2,
    body_timeout_s=0.2,
    body_min_bytes_per_s=100,
    max_header_bytes=1024,
    max_connections=4,
    reserved_connections=1,
)


class Transport:
    """Just enough of asyncio.Transport for uvicorn's protocol; keeps what was written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.eof = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.eof, "write after write_eof"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    @property
    def status(self) -> bytes:
        return bytes(self.written).split(b"\r\n", 1)[0]


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body, then answers 200 with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


class Server:
    """Protocols of one guarded class sharing uvicorn's server state, as on one listening socket."""

    def __init__(self, limits: EdgeLimits = LIMITS, app: Any = ok_app) -> None:
        self.cls = guarded_protocol(limits)
        self.config = Config(app=app, lifespan="off", proxy_headers=False)
        self.config.load()
        self.state = ServerState()

    def connect(self) -> tuple[GuardedHttpToolsProtocol, Transport]:
        protocol = self.cls(config=self.config, server_state=self.state, app_state={})
        transport = Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport


def run(scenario: Callable[[Server], Awaitable[None]], app: Any = ok_app) -> None:
    async def main() -> None:
        await scenario(Server(app=app))

    asyncio.run(main())


def get(path: bytes = b"/v1/models", header_bytes: int = 0) -> bytes:
    """A GET whose request line and headers take exactly `header_bytes` bytes (when given)."""
    head = b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n"
    if header_bytes:
        filler = header_bytes - len(head) - len(b"X-Pad: \r\n\r\n")
        head += b"X-Pad: " + b"a" * filler + b"\r\n"
    return head + b"\r\n"


def post_head(length: int, path: bytes = b"/v1/chat/completions") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\nHost: t\r\ncontent-length: %d\r\n\r\n" % length


def test_headers_up_to_the_cap_are_served_one_byte_more_gets_431() -> None:
    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        protocol.data_received(get(header_bytes=1024))
        await asyncio.sleep(0.01)
        assert transport.status == b"HTTP/1.1 200 OK"
        protocol, transport = server.connect()
        protocol.data_received(get(header_bytes=1025))
        assert transport.status == b"HTTP/1.1 431 Request Header Fields Too Large"
        assert transport.eof and b'"code": "request_header_fields_too_large"' in transport.written

    run(scenario)


def test_header_bytes_are_counted_across_reads() -> None:
    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        request = get(header_bytes=1100)
        for i in range(0, len(request), 100):
            protocol.data_received(request[i : i + 100])
        assert transport.status.startswith(b"HTTP/1.1 431")

    run(scenario)


def test_a_large_body_in_the_same_read_as_the_headers_is_not_header_bytes() -> None:
    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        protocol.data_received(post_head(5000) + b"x" * 5000)
        await asyncio.sleep(0.01)
        assert transport.status == b"HTTP/1.1 200 OK"
        assert transport.written.endswith(b"5000")

    run(scenario)


def test_the_tail_of_a_body_is_not_counted_as_the_next_requests_headers() -> None:
    """A body that arrives after its answer (a 413 before the body was read, say) ends in a read of its own;
    those bytes belong to that request, not to the header budget of the next one on the connection."""

    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        protocol.data_received(post_head(5000) + b"x" * 100)
        protocol.data_received(b"x" * 4900)  # the body's tail: larger than the 1,024-byte header cap
        await asyncio.sleep(0.01)
        transport.written = b""
        protocol.data_received(get())
        await asyncio.sleep(0.01)
        assert transport.status == b"HTTP/1.1 200 OK", transport.written[:80]

    run(scenario)


def test_a_request_in_one_read_arms_no_timer() -> None:
    """The hot path: keep-alive requests that arrive whole cost flag checks, not timers."""

    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        for _ in range(3):
            protocol.data_received(post_head(10) + b"0123456789")
            await asyncio.sleep(0.01)
            assert protocol._header_timer is None and protocol._body_timer is None
        assert transport.written.count(b"HTTP/1.1 200 OK") == 3

    run(scenario)


def test_a_silent_connection_is_closed_at_the_header_deadline_without_an_answer() -> None:
    async def scenario(server: Server) -> None:
        _, transport = server.connect()
        await asyncio.sleep(0.1)
        assert not transport.closed
        await asyncio.sleep(0.2)
        assert transport.closed and transport.written == b""

    run(scenario)


@pytest.mark.parametrize("trickle", [b"GET /v1/models HTTP/1.1\r\nHo", b"\r\n"])
def test_slow_headers_get_408_even_on_a_kept_alive_connection(trickle: bytes) -> None:
    """CRLFs between requests reset uvicorn's keep-alive timer; the header deadline still ends them."""

    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        protocol.data_received(get())
        await asyncio.sleep(0.01)
        for i in range(6):
            protocol.data_received(trickle[2 * i : 2 * i + 2] or b"\r\n")
            await asyncio.sleep(0.05)
        assert transport.status == b"HTTP/1.1 200 OK"
        assert b"HTTP/1.1 408 Request Timeout" in transport.written and transport.eof

    run(scenario)


def test_stray_bytes_during_a_slow_answer_end_the_connection_after_it_not_during_it() -> None:
    """Some clients send a CRLF after a body; the answer outlasting the header deadline still arrives."""

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.4)  # twice the header deadline
        await ok_app(scope, receive, send)

    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        protocol.data_received(post_head(2) + b"{}")
        protocol.data_received(b"\r\n")
        await asyncio.sleep(0.5)
        assert transport.status == b"HTTP/1.1 200 OK"
        assert b"connection: close" in transport.written and transport.closed

    run(scenario, app=slow_app)


def test_a_slow_body_gets_408_and_a_fair_rate_is_given_more_time() -> None:
    async def scenario(server: Server) -> None:
        slow, slow_transport = server.connect()
        fair, fair_transport = server.connect()
        slow.data_received(post_head(1000))
        fair.data_received(post_head(1000))
        for _ in range(12):  # 0.6 s: three body timeouts
            slow.data_received(b"x")  # 20 bytes/s, min rate 100
            fair.data_received(b"x" * 12)  # 240 bytes/s
            await asyncio.sleep(0.05)
        assert slow_transport.status == b"HTTP/1.1 408 Request Timeout" and slow_transport.eof
        assert fair_transport.written == b"" and not fair_transport.closed
        fair.data_received(b"x" * (1000 - 12 * 12))
        await asyncio.sleep(0.01)
        assert fair_transport.status == b"HTTP/1.1 200 OK"


def test_past_the_general_share_general_requests_get_503_and_reserved_paths_get_in() -> None:
    async def scenario(server: Server) -> None:
        for _ in range(3):  # the general share: 4 connections, 1 reserved
            protocol, _ = server.connect()
            protocol.data_received(post_head(10))  # busy: waiting for their bodies
        general, general_transport = server.connect()
        general.data_received(get())
        await asyncio.sleep(0.01)
        assert general_transport.status == b"HTTP/1.1 503 Service Unavailable"
        assert b"retry-after: 1" in general_transport.written
        health, health_transport = server.connect()  # the 5th: evicts the oldest waiting (the refused one)
        assert general_transport.closed
        health.data_received(get(b"/healthz"))
        await asyncio.sleep(0.01)
        assert health_transport.status == b"HTTP/1.1 200 OK"

    run(scenario)


def test_past_the_general_share_a_websocket_upgrade_gets_503_not_a_socket() -> None:
    async def scenario(server: Server) -> None:
        for _ in range(3):
            protocol, _ = server.connect()
            protocol.data_received(post_head(10))
        upgrade, transport = server.connect()
        upgrade.data_received(
            b"GET /v1/realtime HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert transport.status == b"HTTP/1.1 503 Service Unavailable"
        assert b"retry-after: 1" in transport.written and transport.eof

    run(scenario)


def test_past_the_hard_cap_with_every_connection_busy_a_new_one_is_closed_at_once() -> None:
    async def scenario(server: Server) -> None:
        for path in (b"/v1/a", b"/v1/b", b"/v1/c", b"/admin/v1/keys"):
            protocol, _ = server.connect()
            protocol.data_received(post_head(10, path))
        _, transport = server.connect()
        assert transport.closed and transport.written == b""

    run(scenario)


class Conn:
    def __init__(self) -> None:
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True


def test_table_evicts_the_oldest_waiting_connection() -> None:
    table = ConnectionTable(max_connections=2, reserved_connections=1)
    a, b, c = Conn(), Conn(), Conn()
    assert table.opened(a, 1) and table.opened(b, 2)
    table.start_request(a, 2)
    table.idle(a)  # a answered and waits again: now the newest
    assert table.opened(c, 3)
    assert b.evicted and not a.evicted


def test_reserved_paths() -> None:
    for url in (b"/healthz", b"/readyz?verbose=1", b"/metrics", b"/admin/v1/keys", b"/admin/v1/usage?since=1h"):
        assert is_reserved(url), url
    for url in (b"/v1/chat/completions", b"/healthzz", b"/admin", b"http://h/healthz", b"//admin/v1/keys"):
        assert not is_reserved(url), url


def test_connection_cap_is_lowered_to_fit_the_open_files_limit() -> None:
    assert fit_connection_cap(2048, 64, 20000, 400) == 2048
    assert fit_connection_cap(2048, 64, 1024, 200) == 1024 - 200 - SPARE_DESCRIPTORS
    assert fit_connection_cap(2048, 64, 256, 200) == 65
