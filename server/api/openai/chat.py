"""POST /v1/chat/completions: stream and not; the body is forwarded as sent, model mapped."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import admit, answer, json_body, media_refs, v1
from server.api.shapes import check_chat
from server.dialects.chat import CHAT
from server.keys import bearer_token


@post(v1("/chat/completions"), status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    body = await json_body(request)
    check_chat(body)
    return await answer(request, caller, CHAT, body, media_refs(request, caller, "chat"))
