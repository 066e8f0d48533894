"""POST /v1/responses: passed through to openai-kind providers, translated to chat for the others."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import admit, answer, json_body, media_refs, v1
from server.api.shapes import check_responses
from server.dialects.responses import RESPONSES
from server.keys import bearer_token


@post(v1("/responses"), status_code=200)
async def responses(request: Request[Any, Any, Any]) -> Response[Any]:
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    body = await json_body(request)
    check_responses(body)
    return await answer(request, caller, RESPONSES, body, media_refs(request, caller, "responses"))
