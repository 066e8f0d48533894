"""GET /admin/v1/usage/tail: requests as they complete, pushed as server-sent events.

The stream opens with `event: hello` (the server's time and start, so a client knows it is connected and
to which process), then one `event: request` per committed request matching the filters, in commit order.
A follower too slow to keep up gets `event: dropped` with how many it missed (its queue is bounded).
A comment line every `HEARTBEAT_S` keeps proxies from closing an idle stream and lets both ends notice a
dead connection; the stream ends when the server stops, and the client reconnects.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
from litestar import Request, get

from server.api.admin.filters import request_filters
from server.api.common import gateway_of
from server.api.stream_response import RelayStream
from server.clock import now_ms
from server.request_feed import Filters, RequestFeed

HEARTBEAT_S = 10.0


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _events(feed: RequestFeed, filters: Filters, hello: dict[str, Any]) -> AsyncGenerator[bytes, None]:
    follower = feed.follow(filters)  # here, not in the handler: a generator never started never leaves
    try:
        yield _event("hello", hello)
        while not follower.ended:
            rows, dropped = await follower.next_batch(HEARTBEAT_S)
            if dropped:
                yield _event("dropped", {"dropped": dropped})
            if not rows and not dropped:
                yield b": keep-alive\n\n"
            for row in rows:
                yield _event("request", row)
    finally:
        feed.leave(follower)


@get("/usage/tail")
async def usage_tail(
    request: Request[Any, Any, Any],
    project: str | None = None,
    key: str | None = None,
    model: str | None = None,
    status: str | None = None,
) -> RelayStream:
    """Follow requests as they complete, filtered like `GET /admin/v1/requests`."""
    gw = gateway_of(request)
    filters = request_filters(gw, project, key, model, status)
    hello = {"server_time_ms": now_ms(), "started_ms": gw.started_ms}
    return RelayStream(
        _events(gw.settlement.feed, filters, hello),
        write_timeout=gw.settings.server.stream_write_timeout_s,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


TAIL_HANDLERS = [usage_tail]
