"""WS /v1/realtime?model=... (and /api/v1/realtime): the realtime proxy's WebSocket, adapted for the session.

The key comes from `Authorization: Bearer` or the subprotocol `openai-insecure-api-key.<key>` (browsers
cannot set headers); the answer names the `realtime` subprotocol the client offered, never the one carrying
the key. Every refusal happens before the handshake completes, as an HTTP answer in OpenAI's error shape
(ASGI's `websocket.http.response` extension, which uvicorn serves): 401 for a bad key, 403, 404, 429,
503, and 502-504 when no upstream session could be opened. The session id is the x-request-id header of
the upgrade's answer (server/api/request_id.py). A client speaking the beta protocol (header `OpenAI-Beta`
or subprotocol `openai-beta.realtime-v1`) is passed on to the upstream as such.
"""

from __future__ import annotations

from typing import Any

import orjson
from litestar import WebSocket, websocket
from litestar.types import Message

from server.api.common import CLIENT_ID_SCOPE_KEY, REQUEST_ID_SCOPE_KEY, client_ip, gateway_of, v1
from server.api.websocket_auth import websocket_credentials
from server.errors import GatewayError
from server.http_guard.websocket import EXTENSION
from server.realtime.opening import Knock
from server.realtime.session import ClientGone

BETA_SUBPROTOCOL = "openai-beta.realtime-v1"


class AsgiClient:
    """The client's WebSocket as the session sees it (server.realtime.session.ClientSocket)."""

    def __init__(self, socket: WebSocket[Any, Any, Any], subprotocol: str | None) -> None:
        self._socket = socket
        self._scope, self._receive, self._send = socket.scope, socket.receive, socket.send
        self._subprotocol = subprotocol
        self.close_code: int | None = None

    async def accept(self) -> None:
        await self._socket.accept(subprotocols=self._subprotocol)  # takes websocket.connect, answers 101

    async def receive(self) -> str | bytes | None:
        if self.close_code is not None:
            return None
        try:
            message: Message = await self._receive()
        except Exception:
            self.close_code = 1006
            return None
        if message["type"] == "websocket.receive":
            text = message.get("text")
            return text if text is not None else (message.get("bytes") or b"")
        self.close_code = int(message.get("code") or 1005) if message["type"] == "websocket.disconnect" else 1006
        return None

    async def send(self, text: str) -> None:
        try:
            await self._send({"type": "websocket.send", "text": text})
        except Exception as exc:
            raise ClientGone(str(exc)) from None

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason[:120]})
        except Exception as exc:
            raise ClientGone(str(exc)) from None

    def abort(self) -> None:
        hook = self._scope.get("extensions", {}).get(EXTENSION)  # type: ignore[union-attr]
        if hook is not None:
            hook["abort"]()


async def _refuse(socket: WebSocket[Any, Any, Any], error: GatewayError) -> None:
    """The refusal as an HTTP answer before the handshake completes (never a 101)."""
    body = orjson.dumps(error.openai_body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in error.headers.items()]
    await socket.send({"type": "websocket.http.response.start", "status": error.status, "headers": headers})
    await socket.send({"type": "websocket.http.response.body", "body": body})


@websocket(v1("/realtime"))
async def realtime(socket: WebSocket[Any, Any, Any]) -> None:
    gw = gateway_of(socket)  # type: ignore[arg-type]
    scope: Any = socket.scope
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    offered = list(scope.get("subprotocols") or ())
    secret, subprotocol = websocket_credentials(headers, offered)
    beta = headers.get("openai-beta") or ("realtime=v1" if BETA_SUBPROTOCOL in offered else None)
    knock = Knock(
        secret=secret,
        client_ip=client_ip(socket),  # type: ignore[arg-type]
        model=socket.query_params.get("model"),
        request_id=scope[REQUEST_ID_SCOPE_KEY],
        client_request_id=scope.get(CLIENT_ID_SCOPE_KEY),
        beta=beta,
    )
    try:
        await gw.sessions.serve(knock, AsgiClient(socket, subprotocol))
    except GatewayError as exc:
        await _refuse(socket, exc)
