"""/healthz (the process answers) and /readyz (the store can take writes, the shared hot state answers, and
no stop has begun)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from server.api.common import gateway_of, json_response


@get("/healthz")
async def healthz() -> Response[Any]:
    return json_response({"status": "ok"})


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    state = gw.state.reachable()
    ready = gw.store.healthy and state and not gw.stopping
    status = "stopping" if gw.stopping else ("ready" if ready else "not_ready")
    body = {"status": status, "store": gw.store.healthy, "open_reservations": gw.budgets.open_holds}
    if gw.state.shared:
        body["state"] = state  # Redis answers: requests can be metered and limited
    return json_response(body, status=200 if ready else 503)
