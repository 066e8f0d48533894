"""POST /v1/embeddings: string or array inputs, forwarded as sent (encoding_format included)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import client_ip, gateway_of, json_body, new_call, respond, v1
from server.dialects.chat import EMBEDDINGS
from server.errors import bad_request
from server.keys import bearer_token
from server.pipeline import admit, start


def _valid_input(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(item, str) and item for item in value):
        return True
    if all(isinstance(item, int) for item in value):
        return True
    return all(isinstance(item, list) and item and all(isinstance(t, int) for t in item) for item in value)


@post(v1("/embeddings"), status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    caller = admit(gw, bearer_token(request.headers.get("authorization")), client_ip(request))
    body = await json_body(request)
    call = new_call(request, "embeddings", body, "embeddings")
    if not _valid_input(body.get("input")):
        raise bad_request(
            "'input' must be a non-empty string, array of strings, array of tokens or array of token arrays.",
            "invalid_input",
            "input",
        )
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise bad_request(
            "'encoding_format' must be 'float' or 'base64'.", "invalid_encoding_format", "encoding_format"
        )
    return await respond(gw, start(gw, caller, call, EMBEDDINGS))
