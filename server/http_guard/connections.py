"""The connection cap, with room kept for health checks and the admin API.

Two numbers, `max_connections` (hard) and `reserved_connections`:

- A connection is *waiting* from the moment it opens, and again after each response, until the
  headers of its next request are complete: idle keep-alive connections, silent sockets and
  slowloris clients are all waiting. Every other open connection is *busy* (a request in progress,
  or upgraded to a WebSocket).
- General requests are admitted while fewer than `max_connections - reserved_connections`
  connections are busy; past that they get a quick 503 with Retry-After (replies.busy_app).
  Requests for RESERVED paths (/healthz, /readyz, /metrics, /admin/...) are admitted whenever they
  got a connection, so the operators' and the orchestrator's traffic still gets in.
- A new connection past `max_connections` evicts the oldest waiting connection (as nginx drops idle
  keep-alive connections when it runs out of them). Only when every connection is busy is the new
  one closed at once, without a byte read, so file descriptors never run out.

Why waiting connections do not count against the general share: they cost a descriptor and a few
KB, not work, and they are bounded by the header and keep-alive deadlines and by eviction; counting
them would let a few hundred silent sockets deny every real client. Busy general requests are
bounded by the general share, so at least `reserved_connections` slots are always either waiting
(evictable) or serving reserved paths.

A path that merely looks reserved gets admission, nothing else: the admin token is still checked by
the app. An absolute-form or oddly spelled path is treated as general (fails closed, with a 503).
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

log = logging.getLogger("gateway.http")

RESERVED_PATHS = (b"/healthz", b"/readyz", b"/metrics")
RESERVED_PREFIXES = (b"/admin/",)
WARN_INTERVAL_SECONDS = 60.0


def is_reserved(url: bytes) -> bool:
    """Whether a request target (path and query, as sent) is a reserved path."""
    path = url.partition(b"?")[0]
    return path in RESERVED_PATHS or path.startswith(RESERVED_PREFIXES)


class Evictable(Protocol):
    def evict(self) -> None:
        """Close a waiting connection to make room for a new one."""


class ConnectionTable:
    """Waiting connections, oldest first, and the admission decisions; one per server.

    `open_count` arguments are the server's count of open connections (uvicorn's
    `server_state.connections`), which includes the caller.
    """

    def __init__(self, max_connections: int, reserved_connections: int) -> None:
        self.max_connections = max_connections
        self.general_share = max_connections - reserved_connections
        self.waiting: dict[Evictable, None] = {}  # insertion order: oldest first
        self._warned: dict[str, float] = {}

    def opened(self, conn: Evictable, open_count: int) -> bool:
        """A connection opened: make room if needed. False: refuse it (close it at once)."""
        if open_count > self.max_connections:
            if not self.waiting:
                self._warn("refused", "connection cap %d reached with every connection busy: refusing new ones")
                return False
            oldest = next(iter(self.waiting))
            del self.waiting[oldest]
            oldest.evict()
            self._warn("evicted", "connection cap %d reached: closing the oldest idle or slow connections")
        self.waiting[conn] = None
        return True

    def start_request(self, conn: Evictable, open_count: int) -> bool:
        """A request's headers are complete: the connection is busy (not evictable) from now on.

        Returns whether the general share has room for it (else only a reserved path may run).
        """
        waiting = self.waiting
        room = open_count - len(waiting) < self.general_share  # the connection still counts as waiting
        waiting.pop(conn, None)
        return room

    def idle(self, conn: Evictable) -> None:
        """Its response is complete: waiting for the next request, evictable, newest."""
        self.waiting[conn] = None

    def closed(self, conn: Evictable) -> None:
        self.waiting.pop(conn, None)

    def _warn(self, kind: str, message: str) -> None:
        """At most one line per kind per minute: an attack must not flood the log."""
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_INTERVAL_SECONDS) >= WARN_INTERVAL_SECONDS:
            self._warned[kind] = now
            log.warning(message, self.max_connections)
