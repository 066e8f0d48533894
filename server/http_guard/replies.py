"""The answers the connection guard gives on its own, before or instead of the app.

408 (request too slow), 431 (header block too large) and 503 (no room for a general request) carry
the OpenAI error shape every other gateway error has, and an `x-request-id` like every response.
408 and 431 are written as raw bytes, because no request reached the app (its headers never
completed); the 503 is a tiny ASGI app, so uvicorn's request cycle stays in charge of the socket.
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from server.errors import SERVER_BUSY, GatewayError

# 503 for a general request when the connection cap's general share is full; clients retry.
BUSY_RETRY_AFTER_SECONDS = 1


def _body(error: GatewayError) -> bytes:
    return json.dumps(error.openai_body()).encode()


def error_reply(error: GatewayError, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 response that ends the connection (`connection: close`)."""
    body = _body(error)
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {uuid.uuid4()}\r\n"
        + (f"retry-after: {retry_after}\r\n" if retry_after is not None else "")
        + "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_BUSY_BODY = _body(SERVER_BUSY())
_BUSY_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BUSY_BODY)).encode()),
    (b"retry-after", str(BUSY_RETRY_AFTER_SECONDS).encode()),
]


async def busy_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """503 + Retry-After without reading the body.

    The connection is kept alive on purpose: uvicorn then discards the rest of the body as it
    arrives (under the body deadline) and the connection becomes idle, hence evictable. Closing
    with an unread body would make the kernel reset the connection, and the client might never
    see the 503.
    """
    headers = [*_BUSY_HEADERS, (b"x-request-id", str(uuid.uuid4()).encode())]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})
