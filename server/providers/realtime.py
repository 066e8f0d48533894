"""Realtime upstreams: one WebSocket session upstream per client session (`/v1/realtime`).

A provider that serves the `realtime` capability opens an upstream session with
`realtime(model, options) -> RealtimeUpstream`: JSON events as text both ways, in order.

    send(text)   one client event, passed on (waits while the upstream's socket buffer is full)
    recv()       the next upstream event; raises UpstreamClosed when the upstream session ends
    close()      ends the upstream session (idempotent)

The `openai` kind connects with `websockets` to its base URL turned into the realtime URL
(`https://api.openai.com/v1` -> `wss://api.openai.com/v1/realtime?model=...`), sending the gateway's own
provider key (`Authorization: Bearer`), never the client's. Failures before the upstream accepts map to
`UpstreamError` like any provider call, so routing can fall back to the next target: a refused or timed-out
connection, 429 and 5xx are retryable; the upstream refusing the gateway's credentials (401/403) is a final
502 (not the client's fault); any other status is final with its status. After the handshake there is no
fallback: a dropped upstream ends the session (`UpstreamClosed`).

Memory is bounded: at most `max_queue` events of at most `max_event_bytes` wait unread in the client library
(past that it stops reading the socket, and the upstream waits).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from server.errors import UpstreamError
from server.redact import scrub

UPSTREAM_QUEUE_EVENTS = 16


@dataclass(frozen=True, slots=True)
class RealtimeOptions:
    """How an upstream session is opened: the beta protocol header the client asked for (passed on), and
    the largest event either way."""

    beta: str | None = None
    max_event_bytes: int = 16 << 20


class UpstreamClosed(Exception):
    """The upstream session ended (closed by the upstream, or the connection dropped)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"code {code}: {reason}" if reason else f"code {code}")
        self.code, self.reason = code, reason


class RealtimeUpstream(Protocol):
    async def send(self, text: str) -> None: ...

    async def recv(self) -> str: ...

    async def close(self) -> None: ...


def realtime_url(base_url: str, model: str) -> str:
    """The provider's base URL as its realtime WebSocket URL for `model` (http -> ws, https -> wss)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path + "/realtime", f"model={quote(model, safe='')}", ""))


class WebSocketUpstream:
    """An upstream session over a `websockets` client connection."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> str:
        try:
            message = await self._connection.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        return message if isinstance(message, str) else message.decode("utf-8", errors="replace")

    async def close(self) -> None:
        await self._connection.close()


def _closed(exc: ConnectionClosed) -> UpstreamClosed:
    received = exc.rcvd
    return UpstreamClosed(received.code if received else 1006, received.reason if received else "connection lost")


async def connect_websocket(
    name: str, url: str, api_key: str | None, options: RealtimeOptions, connect_timeout: float
) -> WebSocketUpstream:
    """Open the upstream session, or raise the UpstreamError routing acts on (see the module docstring)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if options.beta:
        headers["OpenAI-Beta"] = options.beta
    try:
        async with asyncio.timeout(connect_timeout):
            connection = await connect(
                url,
                additional_headers=headers,
                user_agent_header=None,
                max_size=options.max_event_bytes,
                max_queue=UPSTREAM_QUEUE_EVENTS,
                compression=None,
                open_timeout=None,
            )
    except TimeoutError:
        raise UpstreamError(
            504, f"{name}: realtime connect timeout", retryable=True, upstream_status="timeout"
        ) from None
    except InvalidStatus as exc:
        raise _status_error(name, exc, api_key) from None
    except (OSError, InvalidHandshake) as exc:
        raise UpstreamError(
            503, f"{name}: cannot connect ({type(exc).__name__})", retryable=True, upstream_status="connect"
        ) from None
    return WebSocketUpstream(connection)


def _status_error(name: str, exc: InvalidStatus, api_key: str | None) -> UpstreamError:
    status = exc.response.status_code
    body = scrub(exc.response.body.decode("utf-8", errors="replace")[:300] if exc.response.body else "", (api_key,))
    detail = f"{name}: realtime upgrade refused with HTTP {status}" + (f": {body}" if body else "")
    if status in (401, 403):  # our own credentials: a gateway problem, not the client's
        return UpstreamError(502, detail, retryable=False, upstream_status=status)
    retryable = status == 429 or status >= 500
    return UpstreamError(502 if status >= 500 else status, detail, retryable=retryable, upstream_status=status)
