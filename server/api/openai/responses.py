"""POST /v1/responses: passed through to openai-kind providers, translated to chat for the others."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import client_ip, gateway_of, json_body, new_call, respond, v1
from server.dialects.responses import RESPONSES
from server.errors import bad_request
from server.keys import bearer_token
from server.pipeline import admit, start


@post(v1("/responses"), status_code=200)
async def responses(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    caller = admit(gw, bearer_token(request.headers.get("authorization")), client_ip(request))
    body = await json_body(request)
    call = new_call(request, "responses", body)
    if not isinstance(body.get("input"), str | list) or not body.get("input"):
        raise bad_request("'input' must be a non-empty string or array of items.", "invalid_input", "input")
    return await respond(gw, start(gw, caller, call, RESPONSES))
