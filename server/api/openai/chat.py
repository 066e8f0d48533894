"""POST /v1/chat/completions: stream and not; the body is forwarded as sent, model mapped."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import client_ip, gateway_of, json_body, new_call, respond, v1
from server.dialects.chat import CHAT
from server.errors import bad_request
from server.keys import bearer_token
from server.pipeline import admit, start


def _validate(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array.", "invalid_messages", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(
                f"messages[{index}] must be an object with a 'role'.", "invalid_messages", f"messages.{index}"
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad_request("'stream' must be a boolean.", "invalid_type", "stream")


@post(v1("/chat/completions"), status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    caller = admit(gw, bearer_token(request.headers.get("authorization")), client_ip(request))
    body = await json_body(request)
    call = new_call(request, "chat", body)
    _validate(body)
    return await respond(gw, start(gw, caller, call, CHAT))
