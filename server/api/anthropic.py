"""POST /v1/messages: the Anthropic-compatible front door (key in x-api-key, or a Bearer token as the
current anthropic SDK sends it); answers and errors in Anthropic's shapes, stream and not."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import client_ip, gateway_of, json_body, new_call, respond, v1
from server.api.error_handlers import ANTHROPIC_ERRORS
from server.dialects.messages import MESSAGES
from server.errors import bad_request
from server.keys import bearer_token
from server.pipeline import admit, start


def _validate(body: dict[str, Any]) -> None:
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        raise bad_request("max_tokens: Field required", "invalid_request", "max_tokens")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise bad_request("messages: at least one message is required", "invalid_request", "messages")


@post(v1("/messages"), status_code=200, exception_handlers=ANTHROPIC_ERRORS)  # type: ignore[arg-type]
async def messages(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    secret = request.headers.get("x-api-key") or bearer_token(request.headers.get("authorization"))
    caller = admit(gw, secret, client_ip(request))
    body = await json_body(request)
    call = new_call(request, "messages", body)
    _validate(body)
    return await respond(gw, start(gw, caller, call, MESSAGES))
