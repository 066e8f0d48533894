"""uvicorn's WebSocket protocol (websockets, sans-I/O) with what the realtime proxy needs from the connection.

Why a subclass (uvicorn 0.54, like protocol.py for HTTP): three things cannot be done from the ASGI app.

- A bounded write buffer: the transport pauses the app's sends past WRITE_BUFFER_BYTES (uvicorn's `send`
  waits for room), so a client that stops reading holds at most that much here; the app's own deadline then
  ends the session.
- Cutting a client that does not read: an ASGI `websocket.close` waits for room in the buffer like any send,
  so it never goes out to such a client. The scope's extension `gateway.websocket` carries `abort`, which
  drops the connection at once (its pending sends then fail).
- A graceful stop: uvicorn closes every WebSocket (1012) the moment a stop begins. An accepted connection is
  left to the app instead, which ends its session (error event, billing, close 1012) within the grace;
  uvicorn still waits for it, and cancels it when its own graceful timeout (the grace plus a margin) ends.

Coupling: this overrides `connection_made`, `handle_connect` and `shutdown` and reads `transport`,
`scope`, `handshake_complete`, `close_sent`; tests drive it through real servers (tests/e2e/test_realtime.py).
"""

from __future__ import annotations

from asyncio import BaseTransport, Transport
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

WRITE_BUFFER_BYTES = 64 * 1024
EXTENSION = "gateway.websocket"


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        cast(Transport, transport).set_write_buffer_limits(high=WRITE_BUFFER_BYTES)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = {"abort": self.transport.abort}  # type: ignore[index]

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and not self.transport.is_closing():
            return  # the app ends the session itself (server/realtime/sessions.py), within the grace
        super().shutdown()
