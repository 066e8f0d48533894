"""POST /v1/messages: the Anthropic-compatible front door (key in x-api-key, or a Bearer token as the
current anthropic SDK sends it); answers and errors in Anthropic's shapes, stream and not."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import admit, answer, json_body, v1
from server.api.error_handlers import ANTHROPIC_ERRORS
from server.api.shapes import check_messages
from server.dialects.messages import MESSAGES
from server.keys import bearer_token


@post(v1("/messages"), status_code=200, exception_handlers=ANTHROPIC_ERRORS)  # type: ignore[arg-type]
async def messages(request: Request[Any, Any, Any]) -> Response[Any]:
    caller = admit(request, request.headers.get("x-api-key") or bearer_token(request.headers.get("authorization")))
    body = await json_body(request)
    check_messages(body)
    return await answer(request, caller, MESSAGES, body)
