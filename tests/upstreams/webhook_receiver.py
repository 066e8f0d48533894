"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every POST (path, headers,
raw body, arrival time) and can fail on demand, per path.

Behaviour per path (``POST /_behavior {"path": "/a", ...}``): ``status`` to answer (default 200),
``times`` (that many requests, then back to 200), ``delay_ms`` (hold the answer: a hanging receiver),
``retry_after`` (a Retry-After header), ``location`` (with a 3xx: where to redirect). ``GET /_received``
lists the recordings; ``POST /_reset`` clears recordings and behaviours.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.upstreams.asgi_kit import (
    Receive,
    Send,
    UpstreamProcess,
    header_dict,
    main,
    parse_json,
    read_text,
    send_json,
    start_upstream_process,
)

RECEIVED: list[dict[str, Any]] = []
BEHAVIOR: dict[str, dict[str, Any]] = {}


async def _control(method: str, path: str, body: Any, send: Send) -> None:
    if (method, path) == ("GET", "/_health"):
        await send_json(send, 200, {"ok": True})
    elif (method, path) == ("GET", "/_received"):
        await send_json(send, 200, RECEIVED)
    elif (method, path) == ("POST", "/_reset"):
        RECEIVED.clear()
        BEHAVIOR.clear()
        await send_json(send, 200, {"ok": True})
    elif (method, path) == ("POST", "/_behavior") and isinstance(body, dict) and isinstance(body.get("path"), str):
        BEHAVIOR[body["path"]] = body
        await send_json(send, 200, body)
    else:
        await send_json(send, 404, {"error": f"no control route {method} {path}"})


def _take(path: str) -> dict[str, Any]:
    behavior = BEHAVIOR.get(path) or {}
    times = behavior.get("times")
    if times is not None:
        if times <= 1:
            BEHAVIOR.pop(path, None)
        else:
            behavior["times"] = times - 1
    return behavior


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    text = await read_text(receive)
    method, path = scope["method"], scope["path"]
    if path.startswith("/_"):
        await _control(method, path, parse_json(text)[0], send)
        return
    RECEIVED.append({"path": path, "headers": header_dict(scope), "body": text, "at": time.time()})
    behavior = _take(path)
    if behavior.get("delay_ms"):
        await asyncio.sleep(behavior["delay_ms"] / 1000)
    status = int(behavior.get("status") or 200)
    headers = []
    if behavior.get("retry_after") is not None:
        headers.append((b"retry-after", str(behavior["retry_after"]).encode()))
    if behavior.get("location"):
        headers.append((b"location", str(behavior["location"]).encode()))
    await send_json(send, status, {"ok": 200 <= status < 300, "status": status}, headers)


class Receiver(UpstreamProcess):
    base_path = ""

    def url(self, path: str = "/hooks", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        got = httpx.get(f"{self.root_url}/_received").raise_for_status().json()
        return [r for r in got if path is None or r["path"] == path]

    def behave(self, path: str, **behavior: Any) -> None:
        httpx.post(f"{self.root_url}/_behavior", json={"path": path, **behavior}).raise_for_status()


def start_receiver(port: int | None = None) -> Receiver:
    return start_upstream_process(port, module="tests.upstreams.webhook_receiver", process_class=Receiver)


if __name__ == "__main__":
    main(app, __doc__)
