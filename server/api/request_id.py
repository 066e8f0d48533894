"""Raw ASGI middleware: every response carries x-request-id (a client's well-formed UUID is kept), WebSocket
upgrades included (accepted or refused).

The gateway's own request id is always fresh; a client-sent id is echoed and stored beside it
(requests.client_request_id) so a client reusing an id can never collide with another record.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.api.common import ARRIVED_SCOPE_KEY, CLIENT_ID_SCOPE_KEY, REQUEST_ID_SCOPE_KEY
from server.request_facts import REQUEST_ID

# The messages that start an answer: an HTTP response, a WebSocket's 101 (a realtime session's id is its
# x-request-id), and a WebSocket upgrade refused with an HTTP answer.
_STARTS = ("http.response.start", "websocket.accept", "websocket.http.response.start")


def _well_formed(value: bytes) -> str | None:
    if len(value) != 36:
        return None
    try:
        return str(uuid.UUID(value.decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        return None


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        arrived = time.perf_counter()
        client_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                client_id = _well_formed(value)
                break
        own_id = str(uuid.uuid4())
        state: Any = scope
        state[REQUEST_ID_SCOPE_KEY] = own_id
        state[CLIENT_ID_SCOPE_KEY] = client_id
        state[ARRIVED_SCOPE_KEY] = arrived
        echoed = (client_id or own_id).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] in _STARTS:
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", echoed)]
            await send(message)

        token = REQUEST_ID.set(own_id)  # every log line written below this request names it
        try:
            await app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

    return middleware
