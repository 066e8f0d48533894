"""The access log: one line per HTTP request on the `gateway.access` logger, once its response ended.

    request=<gateway id> method=POST path=/v1/chat/completions status=200 key=gw_live_AbCd
    model=gpt-4o-mini latency_ms=12.4 cost=0.000011

A realtime WebSocket gets its line when the session ends (status 101, its latency the session's length),
or when its upgrade is refused (that answer's status).

`key` is the key's display prefix (what `keys list` shows) and appears only once the key has
authenticated; `model` and `cost` once the request path knew them (server/request_facts.py); `-`
otherwise. Never logged: headers (Authorization, x-api-key), the query string (Gemini clients may
put their key in ?key=), bodies. `status=499` means the client left before any response started.
Switched off with `[server] access_log = false`.
"""

from __future__ import annotations

import logging
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.api.common import REQUEST_ID_SCOPE_KEY
from server.money import format_credits
from server.request_facts import CURRENT, RequestFacts

log = logging.getLogger("gateway.access")


def line(scope: Scope, status: int, latency_ms: float, facts: RequestFacts) -> str:
    cost = "-" if facts.cost_micro is None else format_credits(facts.cost_micro)
    request_id = scope.get(REQUEST_ID_SCOPE_KEY) or "-"  # type: ignore[call-overload]
    return (
        f"request={request_id} method={scope.get('method', 'GET')} path={scope.get('path', '-')} status={status}"
        f" key={facts.key_prefix or '-'} model={facts.model or '-'} latency_ms={latency_ms:.1f} cost={cost}"
    )


def access_log_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        facts = RequestFacts()
        token = CURRENT.set(facts)
        started = time.perf_counter()
        status = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = int(message["status"])
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        try:
            await app(scope, receive, send_and_watch)
        finally:
            CURRENT.reset(token)
            request_id = scope.get(REQUEST_ID_SCOPE_KEY)  # type: ignore[call-overload]
            entry = line(scope, status or 499, (time.perf_counter() - started) * 1000, facts)
            log.info(entry, extra={"request_id": request_id})  # the request's context has ended here

    return middleware
