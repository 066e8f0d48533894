"""POST /v1/embeddings: string or array inputs, forwarded as sent (encoding_format included)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import admit, answer, json_body, v1
from server.api.shapes import check_embeddings
from server.dialects.chat import EMBEDDINGS
from server.keys import bearer_token


@post(v1("/embeddings"), status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    body = await json_body(request)
    check_embeddings(body)
    return await answer(request, caller, EMBEDDINGS, body)
