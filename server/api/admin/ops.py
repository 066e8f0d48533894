"""Admin routes for running the appliance: reload the config (more below as the operator's tools)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import gateway_of, json_response
from server.errors import RELOAD_REFUSED
from server.reload import ReloadRefused, reload


@post("/reload", status_code=200)
async def post_reload(request: Request[Any, Any, Any]) -> Response[Any]:
    """Re-read config.toml (as SIGHUP does); 400 `invalid_config` with the reason when it is refused."""
    try:
        answer = await reload(gateway_of(request))
    except ReloadRefused as exc:
        raise RELOAD_REFUSED(detail=str(exc)) from None
    return json_response(answer)


OPS_HANDLERS = [post_reload]
