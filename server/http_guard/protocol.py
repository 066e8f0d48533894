"""uvicorn's httptools protocol plus deadlines, a header-size cap and the connection cap.

Why a protocol subclass: uvicorn (0.54) bounds none of this. `timeout_keep_alive` runs only between
requests and is cancelled by any byte (a fresh connection has no timer at all); `limit_concurrency`
answers 503 to everyone, health checks and the admin API included, counts idle sockets and still
accepts every connection; `h11_max_incomplete_event_size` is for h11 only, while httptools buffers
a header value whole, with no limit. An ASGI middleware cannot help: it runs after the headers are
parsed and never sees a silent socket. Another server (hypercorn, granian) would change the stack
the SPEC names and the measured hot path. uvicorn takes a protocol class (`Config(http=cls)`), so
this subclass adds what is missing where the bytes arrive.

Phases of a connection and their deadlines:

- headers (from the connection's opening, or from the first bytes of a later request, until the
  headers are complete): `header_timeout_s`, and at most `max_header_bytes` of request line and
  headers. A silent new socket is closed when the deadline passes; a slow one gets 408; a header
  block past the cap gets 431 (only the bytes that fit are ever given to the parser).
- body (headers complete, body not): `body_timeout_s`, extended by one second per
  `body_min_bytes_per_s` bytes received (Apache mod_reqtimeout's rule), then 408. A request let in
  through the reserve gets RESERVE_BODY_SECONDS and no extension, so slow bodies cannot squat it.
- idle between requests: uvicorn's own `timeout_keep_alive`.
- the response: no deadline here (streams may be long); the app and the providers bound it.

Failure behaviour: a refused request is answered, then the connection is closed the way nginx
does it ("lingering close"): the write side is shut after the answer and input is discarded until
the client closes or LINGER_SECONDS pass, because closing with unread input resets the connection
and the client would likely never read the answer. When an earlier request on the connection is still
being answered, nothing can be added to the wire: that answer finishes, then the connection ends.

Cost: a few attribute checks per read; a timer only when a request does not arrive in one read
(bench/README.md has the figures). Coupling: this overrides uvicorn's parser callbacks and reads
`cycle`, `connections` and `flow`; tests/unit/test_http_guard.py drives it against the installed
uvicorn, so an upgrade that changes them fails there first.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from server.errors import HEADERS_TOO_LARGE, REQUEST_TIMEOUT, SERVER_BUSY, GatewayError
from server.http_guard.connections import ConnectionTable, is_reserved
from server.http_guard.replies import BUSY_RETRY_AFTER_SECONDS, busy_app, error_reply

LINGER_SECONDS = 2.0
RESERVE_BODY_SECONDS = 2.0
MIN_REARM_SECONDS = 0.25  # a body timer that finds the deadline extended sleeps at least this long


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The [server] settings the protocol enforces (seconds, bytes, bytes/s, connections)."""

    header_timeout_s: float
    body_timeout_s: float
    body_min_bytes_per_s: int
    max_header_bytes: int
    max_connections: int
    reserved_connections: int


_Base = HttpToolsProtocol  # the per-request overrides call it explicitly: super() costs ~0.1 µs more on 3.11


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One per connection; `limits` and `table` are bound per server by `guarded_protocol`."""

    limits: ClassVar[EdgeLimits]
    table: ClassVar[ConnectionTable]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._app = self.app
        self._in_headers = True  # waiting for, or reading, a request line and headers
        self._header_bytes = 0  # of the request being read, counted per read
        self._headers_done = 0  # requests whose headers completed: did a read complete some?
        self._messages_done = 0  # requests whose body completed: did a read end one?
        self._header_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._body_started = 0.0
        self._body_bytes = 0  # of the request being read
        self._via_reserve = False  # this request got in only because its path is reserved
        self._refuse_upgrade = False
        self._stopped = False  # no more parsing: lingering after a refusal, or handed to WebSockets

    # uvicorn's entry points

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.table.opened(self, len(self.connections)):
            transport.close()
            return
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self.table.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes | memoryview) -> None:  # type: ignore[override]
        if self._stopped:
            return
        if self._in_headers and len(data) > self.limits.max_header_bytes - self._header_bytes:
            self._receive_past_header_room(data)
            return
        before, ended = self._headers_done, self._messages_done
        _Base.data_received(self, data)  # type: ignore[arg-type]  # httptools takes any buffer
        # Count the read, and arm the deadline of the phase it left us in (none if it held a whole request).
        if self._stopped:
            return
        if self._in_headers:
            if self._headers_done == before and self._messages_done == ended:
                self._header_bytes += len(data)  # the whole read was header bytes (or CRLFs) of one request
                if self._header_timer is None:
                    self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_deadline)
        elif self._body_timer is None:
            self._body_started = self.loop.time()
            self._body_timer = self.loop.call_later(self._body_timeout(), self._body_deadline)

    def handle_websocket_upgrade(self) -> None:
        if self._refuse_upgrade:
            self._answer_and_linger(error_reply(SERVER_BUSY(), BUSY_RETRY_AFTER_SECONDS))
            return
        self._stopped = True
        self._cancel_timers()
        self.table.closed(self)
        super().handle_websocket_upgrade()

    def evict(self) -> None:
        """The connection table needs room: this connection is waiting, so it just goes."""
        self.transport.close()

    # parser callbacks

    def on_headers_complete(self) -> None:
        self._headers_done += 1
        self._in_headers = False
        self._header_bytes = 0
        self._body_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        room = self.table.start_request(self, len(self.connections))
        self._via_reserve = not room
        if room or is_reserved(self.url):
            _Base.on_headers_complete(self)
        elif self.parser.should_upgrade() and self._should_upgrade():
            self._refuse_upgrade = True  # answered by handle_websocket_upgrade, which the parser calls next
        else:
            self.app = busy_app
            _Base.on_headers_complete(self)
            self.app = self._app

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)  # for the minimum rate
        _Base.on_body(self, body)

    def on_message_complete(self) -> None:
        self._in_headers = True
        self._messages_done += 1
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        _Base.on_message_complete(self)

    def on_response_complete(self) -> None:
        _Base.on_response_complete(self)
        if self.cycle.response_complete and not self._stopped and not self.transport.is_closing():
            self.table.idle(self)

    # reading

    def _receive_past_header_room(self, data: bytes | memoryview) -> None:
        """Give the parser only what fits under the header cap: 431 if the headers go on past it."""
        room = self.limits.max_header_bytes - self._header_bytes
        view = memoryview(data)
        before = self._headers_done
        _Base.data_received(self, view[:room])  # type: ignore[arg-type]
        if self._stopped or self.transport.is_closing():
            return
        if self._headers_done == before:
            message = f"Request line and headers exceed {self.limits.max_header_bytes} bytes."
            self._refuse_headers(HEADERS_TOO_LARGE(detail=message))
            return
        self.data_received(view[room:])  # the rest, with a fresh budget if another request starts in it

    # deadlines

    def _body_timeout(self) -> float:
        if self._via_reserve:
            return min(self.limits.body_timeout_s, RESERVE_BODY_SECONDS)
        return self.limits.body_timeout_s

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self._stopped or self.transport.is_closing():
            return
        if self._header_bytes == 0:  # a new connection that never sent a byte
            self.transport.close()
            return
        message = f"Request headers not received within {self.limits.header_timeout_s:g} s."
        self._refuse_headers(REQUEST_TIMEOUT(detail=message))

    def _body_deadline(self) -> None:
        self._body_timer = None
        if self._stopped or self._in_headers or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the app is not reading the body yet: not the client's delay
            self._body_started, self._body_bytes = now, 0
            self._body_timer = self.loop.call_later(self._body_timeout(), self._body_deadline)
            return
        allowed = self._body_timeout()
        if self.limits.body_min_bytes_per_s and not self._via_reserve:
            allowed += self._body_bytes / self.limits.body_min_bytes_per_s
        left = allowed - (now - self._body_started)
        if left > 0:
            self._body_timer = self.loop.call_later(max(left, MIN_REARM_SECONDS), self._body_deadline)
            return
        cycle = self.cycle
        if cycle.response_started:  # answered already (or answering): the rest of the body is moot
            self.transport.close()
            return
        cycle.disconnected = True  # the app's receive() now returns http.disconnect; its send() is a no-op
        cycle.message_event.set()
        message = f"Request body not received in time ({self.limits.body_timeout_s:g} s, then the minimum rate)."
        self._answer_and_linger(error_reply(REQUEST_TIMEOUT(detail=message)))

    # refusing

    def _refuse_headers(self, error: GatewayError) -> None:
        """Refuse the request whose headers are being read (no app saw it).

        If an earlier request on the connection is still being answered (a pipelined request, or
        stray bytes such as the CRLF some clients send after a body), that answer is let finish and
        the connection ends after it; nothing more is read meanwhile.
        """
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._stopped = True
            self._cancel_timers()
            cycle.keep_alive = False
            return
        self._answer_and_linger(error_reply(error))

    def _answer_and_linger(self, reply: bytes) -> None:
        self._stopped = True
        self._cancel_timers()
        self.table.idle(self)  # done with: evictable if room is needed
        transport = self.transport
        transport.write(reply)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def _cancel_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None


def guarded_protocol(limits: EdgeLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class bound to these limits and to its own connection table (one per server)."""
    table = ConnectionTable(limits.max_connections, limits.reserved_connections)
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits, "table": table})
