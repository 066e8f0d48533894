"""The key of a WebSocket upgrade (realtime): browsers cannot set headers, so besides `Authorization: Bearer`
the key may come as the subprotocol `openai-insecure-api-key.<key>`. The answer names the `realtime`
subprotocol the client offered, never the one carrying the key. Admission is then the request path's own
(`RequestPath.admit`): the same per-IP net, key, scopes and limits as any other call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

KEY_SUBPROTOCOL = "openai-insecure-api-key."
REALTIME_SUBPROTOCOL = "realtime"


def websocket_credentials(headers: Mapping[str, str], subprotocols: Iterable[str]) -> tuple[str | None, str | None]:
    """(the key, the subprotocol to accept) for an upgrade request."""
    offered = [p.strip() for p in subprotocols if p and p.strip()]
    secret = None
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        secret = token.strip()
    for protocol in offered:
        if protocol.startswith(KEY_SUBPROTOCOL) and secret is None:
            secret = protocol[len(KEY_SUBPROTOCOL) :] or None
    accepted = next((p for p in offered if p == REALTIME_SUBPROTOCOL or p.startswith("openai-beta.")), None)
    return secret, accepted
