"""The connection guard: slow and hostile clients must not take the server down.

`uvicorn_options(settings)` is what `gatewayctl serve` passes to `uvicorn.run`: the guarded
httptools protocol (protocol.py: header and body deadlines, the header-size cap, the connection
cap of connections.py with room reserved for health checks and the admin API) and the idle
keep-alive deadline, and the WebSocket protocol of the realtime proxy (websocket.py). It raises the
process's open-files limit first (fd_limit.py), because the connection cap must fit in it. Why the guard
sits in uvicorn's protocol and not in the ASGI app or another server: see protocol.py.
"""

from __future__ import annotations

from typing import Any

from server.http_guard.fd_limit import fit_connection_cap, raise_open_files_limit
from server.http_guard.protocol import EdgeLimits, guarded_protocol
from server.http_guard.websocket import GuardedWebSocketProtocol
from server.settings import Settings

__all__ = ["EdgeLimits", "edge_limits", "uvicorn_options"]


def edge_limits(settings: Settings, open_files: int) -> EdgeLimits:
    """The [server] limits, with the connection cap fitted into `open_files` descriptors."""
    server = settings.server
    upstream = sum(p.max_connections for p in settings.providers if p.kind != "mock")
    cap = fit_connection_cap(server.max_connections, server.reserved_connections, open_files, upstream)
    return EdgeLimits(
        header_timeout_s=server.header_timeout_s,
        body_timeout_s=server.body_timeout_s,
        body_min_bytes_per_s=server.body_min_bytes_per_s,
        max_header_bytes=server.max_header_bytes,
        max_connections=cap,
        reserved_connections=min(server.reserved_connections, cap - 1),
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Raise the open-files limit (process-wide, logged), then return uvicorn.run's guard options."""
    limits = edge_limits(settings, raise_open_files_limit())
    return {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": settings.server.keep_alive_timeout_s,
        "ws": GuardedWebSocketProtocol,  # bounded writes, cutting clients that do not read, graceful stop
        "ws_max_size": settings.realtime.max_event_mb << 20,
        "ws_per_message_deflate": False,
    }
