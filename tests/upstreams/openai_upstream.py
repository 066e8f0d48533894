"""A stand-in OpenAI-compatible upstream for end-to-end tests.

It speaks OpenAI's wire format (checked against the official OpenAPI description), replies
deterministically, records every request so tests can assert what the gateway sent upstream,
and can be told to misbehave (errors, delays, broken streams) via ``POST /_behavior``.
It is a hand-written ASGI app so it starts fast and needs nothing beyond uvicorn.

Routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``POST /v1/responses`` (the Responses API,
stream and not: the same deterministic reply as chat) and ``GET /v1/models``.

Run: ``python -m tests.upstreams.openai_upstream --host 127.0.0.1 --port 8123``
Control routes (no auth): ``GET /_health``, ``GET /_received``, ``GET /_counters`` (``embedded_inputs``: the
input items embedded so far), ``POST /_reset``, ``POST /_behavior``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from typing import Any

from tests.upstreams.asgi_kit import REPO_ROOT as REPO_ROOT

# REPO_ROOT, UpstreamProcess and start_upstream_process are re-exported: tests import them from here
from tests.upstreams.asgi_kit import (
    SSE_HEADERS,
    FieldError,
    Headers,
    Receive,
    Request,
    Send,
    control_route,
    json_app,
    send_json,
    stream,
)
from tests.upstreams.asgi_kit import State as _KitState
from tests.upstreams.asgi_kit import UpstreamProcess as UpstreamProcess
from tests.upstreams.asgi_kit import main as _serve
from tests.upstreams.asgi_kit import start_upstream_process as start_upstream_process

MODULE = "tests.upstreams.openai_upstream"
TOOL_ARGUMENTS = '{"x": 1}'
TOOL_ARGUMENT_FRAGMENTS = ['{"', "x", '":', " 1", "}"]  # how OpenAI splits arguments into deltas
MODELS = [("gpt-4o-mini", 1721172741), ("text-embedding-3-small", 1705948997)]
DEFAULT_BEHAVIOR: dict[str, Any] = {
    "status": None,
    "delay_ms": 0,
    "chunk_delay_ms": 0,
    "fail_after_chunks": None,
    "omit_usage": False,
    "times": None,
    # A reply of this many words (one token each) instead of the echo; capped by the request's
    # max_completion_tokens / max_tokens (finish_reason "length") unless ignore_cap is set.
    "reply_words": None,
    "ignore_cap": False,
    # Replace the usage object (any JSON: null, a string, negative counts) when replace_usage is set.
    "replace_usage": False,
    "usage": None,
    # The message of a simulated error (status), e.g. one that echoes the caller's credentials.
    "error_message": None,
}
ERROR_KINDS = {  # status -> (message, type, code), mirroring what api.openai.com returns
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
}


class ApiError(FieldError):
    """Raised by handlers to answer with an OpenAI-shaped error body."""

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class State(_KitState):
    """Process-wide recordings and behaviour; one event loop, so no locking is needed."""

    defaults = DEFAULT_BEHAVIOR


STATE = State()


def message_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def chat_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(message_text(m.get("content"))) for m in messages) // 4 + 1


def expected_reply(messages: list[dict[str, Any]]) -> str:
    """The deterministic reply text, exposed so tests can compute it too."""
    users = [m for m in messages if m.get("role") == "user"]
    return "upstream reply to: " + (message_text(users[-1].get("content")) if users else "")


def chosen_tool(body: dict[str, Any]) -> str | None:
    """Name of the tool to call, or None for a text reply (no tools, or tool_choice "none")."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return str(choice["function"].get("name"))
    return str(tools[0].get("function", {}).get("name", "tool"))


def expected_embedding(item: str | list[int], dimensions: int = 8) -> list[float]:
    """Deterministic vector in [-1, 1] from sha256 of the item; values are exact float32s so the
    float and base64 encodings decode to identical numbers."""
    key = (item if isinstance(item, str) else json.dumps(item)).encode()
    blocks = range(dimensions // 16 + 1)
    stream = b"".join(hashlib.sha256(key + i.to_bytes(4, "little")).digest() for i in blocks)
    raw = [int.from_bytes(stream[2 * i : 2 * i + 2], "little") / 32767.5 - 1.0 for i in range(dimensions)]
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *raw)))


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _request_id() -> bytes:
    return f"req_{uuid.uuid4().hex}".encode()


async def _send_json(send: Send, status: int, payload: Any, extra: Headers = ()) -> None:
    await send_json(send, status, payload, [(b"x-request-id", _request_id()), *extra])


async def _send_events(send: Send, behavior: dict[str, Any], pieces: list[bytes], tail: bytes = b"") -> None:
    """Stream SSE ``pieces``; ``fail_after_chunks`` drops the connection mid-body (no final chunk, no tail)."""
    headers = [*SSE_HEADERS, (b"x-request-id", _request_id())]
    fail_after, delay = behavior["fail_after_chunks"], behavior["chunk_delay_ms"]
    await stream(send, pieces, headers, fail_after=fail_after, chunk_delay_ms=delay, tail=tail)


def _behavior_error(status: int, custom_message: str | None = None) -> ApiError:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    message, type_, code = ERROR_KINDS.get(status, (f"Simulated upstream error {status}", kind, None))
    return ApiError(status, custom_message or message, code=code, type_=type_)


def _output_cap(body: dict[str, Any], behavior: dict[str, Any]) -> int | None:
    """The output-token cap the request set (max_completion_tokens wins), unless told to ignore it."""
    if behavior["ignore_cap"]:
        return None
    for name in ("max_completion_tokens", "max_tokens"):
        if isinstance(body.get(name), int):
            return int(body[name])
    return None


def _scripted_reply(body: dict[str, Any], behavior: dict[str, Any]) -> tuple[str, bool]:
    """(reply, truncated): ``reply_words`` words, cut at the request's output cap."""
    words = int(behavior["reply_words"])
    cap = _output_cap(body, behavior)
    produced = words if cap is None else min(cap, words)
    return " ".join(f"w{i}" for i in range(produced)), produced < words


async def chat_completions(body: dict[str, Any], behavior: dict[str, Any], send: Send) -> None:
    messages, model = body.get("messages"), body.get("model")
    if not isinstance(model, str):
        raise ApiError(400, "you must provide a model parameter", param="model")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "'messages' must be a non-empty array of message objects", param="messages")
    tool = chosen_tool(body)
    reply = None if tool else expected_reply(messages)
    truncated = False
    if not tool and behavior["reply_words"] is not None:
        reply, truncated = _scripted_reply(body, behavior)
    choices = body.get("n") if isinstance(body.get("n"), int) and body.get("n", 0) > 0 else 1
    usage: Any = _usage(chat_prompt_tokens(messages), (5 if tool else len(reply.split())) * choices)
    if behavior["replace_usage"]:
        usage = behavior["usage"]
    now = int(time.time())
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
        "object": "chat.completion",
        "created": now,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_standin01",
    }
    finish = "tool_calls" if tool else ("length" if truncated else "stop")
    call_id = "call_" + hashlib.sha256(f"{tool}{expected_reply(messages)}".encode()).hexdigest()[:24]
    tool_call = (
        {"id": call_id, "type": "function", "function": {"name": tool, "arguments": TOOL_ARGUMENTS}} if tool else None
    )
    if not body.get("stream"):
        message = {"role": "assistant", "content": reply, "refusal": None, "annotations": []}
        message |= {"tool_calls": [tool_call]} if tool_call else {}
        payload = {
            **base,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(choices)
            ],
        }
        payload |= {} if behavior["omit_usage"] else {"usage": usage}
        return await _send_json(send, 200, payload)
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    include_usage = wants_usage and not behavior["omit_usage"]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
        out = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        return {**out, "usage": None} if include_usage else out

    if tool_call:  # OpenAI: role + id + name (empty arguments) first, then argument fragments
        first = {**tool_call, "index": 0, "function": {"name": tool, "arguments": ""}}
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [first], "refusal": None})]
        events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in TOOL_ARGUMENT_FRAGMENTS]
        events.append(chunk({}, finish))
    else:
        words = reply.split(" ")
        events = []
        for index in range(choices):
            events.append(chunk({"role": "assistant", "content": "", "refusal": None}, index=index))
            events += [
                chunk({"content": w + (" " if i < len(words) - 1 else "")}, index=index) for i, w in enumerate(words)
            ]
            events.append(chunk({}, finish, index=index))
    if include_usage:
        events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    pieces = [f"data: {json.dumps(event)}\n\n".encode() for event in events]
    await _send_events(send, behavior, pieces, tail=b"data: [DONE]\n\n")


def _embedding_items(value: Any) -> list[str | list[int]]:
    """Normalise ``input`` to a list of items (string or token list), rejecting what OpenAI rejects."""

    def is_tokens(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(type(t) is int for t in v)

    if (isinstance(value, str) and value) or is_tokens(value):
        return [value]
    if (
        isinstance(value, list)
        and value
        and (all(isinstance(v, str) and v for v in value) or all(is_tokens(v) for v in value))
    ):
        return list(value)
    raise ApiError(
        400,
        "'input' must be a non-empty string, array of strings, array of tokens, or array of token arrays",
        param="input",
    )


async def embeddings(body: dict[str, Any], behavior: dict[str, Any], send: Send) -> None:
    if not isinstance(body.get("model"), str):
        raise ApiError(400, "you must provide a model parameter", param="model")
    items = _embedding_items(body.get("input"))
    dims, fmt = body.get("dimensions", 8), body.get("encoding_format", "float")
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 4096:
        raise ApiError(400, "'dimensions' must be a positive integer", param="dimensions")
    if fmt not in ("float", "base64"):
        raise ApiError(400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    STATE.count("embedded_inputs", len(items))
    data = []
    for i, item in enumerate(items):
        vec: Any = expected_embedding(item, dims)
        if fmt == "base64":
            vec = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vec})
    payload: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    tokens = sum(len(it) // 4 + 1 if isinstance(it, str) else len(it) for it in items)
    payload |= {} if behavior["omit_usage"] else {"usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    await _send_json(send, 200, payload)


def responses_messages(value: Any) -> list[dict[str, Any]]:
    """Responses ``input`` (a string or a list of items) as chat-like ``{role, content}`` messages, so
    ``expected_reply`` gives the Responses reply too; items that are not messages are skipped."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            continue
        content = item.get("content")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and "text" in p]
            content = " ".join(str(t) for t in texts)
        messages.append({"role": item.get("role"), "content": content})
    return messages


def responses_input_tokens(body: dict[str, Any]) -> int:
    instructions = body.get("instructions")
    extra = [{"role": "system", "content": instructions}] if isinstance(instructions, str) else []
    return chat_prompt_tokens(extra + responses_messages(body.get("input")))


def _responses_tool(body: dict[str, Any]) -> str | None:
    """Name of the function to call (Responses tools are flat: ``{type, name, parameters}``), or None."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict) and choice.get("type") == "function":
        return str(choice.get("name"))
    return str(tools[0].get("name"))


def _check_responses(body: dict[str, Any]) -> None:
    """What api.openai.com refuses on /v1/responses that a gateway could get wrong."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    value = body.get("input")
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(i, dict) for i in value))):
        raise ApiError(400, "Invalid type for 'input': expected a string or an array of input items.", param="input")
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or (tool.get("type") == "function" and not tool.get("name")):
            raise ApiError(400, f"Missing required parameter: 'tools[{i}].name'.", param=f"tools[{i}].name")
        if "function" in tool:  # the chat shape nested under "function" is a common mistake
            raise ApiError(400, f"Unknown parameter: 'tools[{i}].function'.", param=f"tools[{i}].function")
    if body.get("previous_response_id"):
        raise ApiError(
            400,
            f"Previous response with id '{body['previous_response_id']}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )


def _response_object(body: dict[str, Any], response_id: str, status: str, output: list[Any], usage: Any) -> Any:
    now = int(time.time())
    echoed = ("instructions", "max_output_tokens", "previous_response_id", "top_logprobs", "user")
    return {
        "id": response_id,
        "object": "response",
        "created_at": now,
        "status": status,
        "background": False,
        "completed_at": now if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        **{key: body.get(key) for key in echoed},
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "metadata": body.get("metadata") or {},
    }


async def responses(body: dict[str, Any], behavior: dict[str, Any], send: Send) -> None:
    """POST /v1/responses: one message (or one function call) answering the last user input."""
    _check_responses(body)
    digest = hashlib.sha256(json.dumps(body.get("input")).encode()).hexdigest()
    response_id, item_id = f"resp_{uuid.uuid4().hex}", f"msg_{digest[:32]}"
    tool = _responses_tool(body)
    reply = expected_reply(responses_messages(body.get("input")))
    prompt, completion = responses_input_tokens(body), 5 if tool else len(reply.split())
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }
    usage_or_none = None if behavior["omit_usage"] else usage
    if tool:
        item_id = f"fc_{digest[:32]}"
        call = {"id": item_id, "type": "function_call", "status": "completed", "arguments": TOOL_ARGUMENTS}
        item: dict[str, Any] = call | {"call_id": f"call_{digest[32:56]}", "name": tool}
    else:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": reply}
        item = {"id": item_id, "type": "message", "status": "completed", "content": [part], "role": "assistant"}
    if not body.get("stream"):
        return await _send_json(send, 200, _response_object(body, response_id, "completed", [item], usage_or_none))
    start = _response_object(body, response_id, "in_progress", [], None)
    where = {"item_id": item_id, "output_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    if tool:
        opened = {**item, "status": "in_progress", "arguments": ""}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": opened})
        events += [
            {"type": "response.function_call_arguments.delta", **where, "delta": f} for f in TOOL_ARGUMENT_FRAGMENTS
        ]
        events.append(
            {"type": "response.function_call_arguments.done", **where, "name": tool, "arguments": TOOL_ARGUMENTS}
        )
    else:
        where["content_index"] = 0
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        opened = {**item, "status": "in_progress", "content": []}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": opened})
        events.append({"type": "response.content_part.added", **where, "part": empty})
        words = reply.split(" ")
        events += [
            {
                "type": "response.output_text.delta",
                **where,
                "delta": w + (" " if i < len(words) - 1 else ""),
                "logprobs": [],
            }
            for i, w in enumerate(words)
        ]
        events.append({"type": "response.output_text.done", **where, "text": reply, "logprobs": []})
        events.append({"type": "response.content_part.done", **where, "part": item["content"][0]})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    done = _response_object(body, response_id, "completed", [item], usage_or_none)
    events.append({"type": "response.completed", "response": done})
    pieces = [
        f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': i})}\n\n".encode()
        for i, event in enumerate(events)
    ]
    await _send_events(send, behavior, pieces)  # no [DONE] on /responses; a broken stream has no response.completed


async def control(request: Request, send: Send) -> None:
    """Test-only routes; never recorded and never authenticated."""

    async def reply(status: int, payload: Any) -> None:
        await _send_json(send, status, payload)

    if not await control_route(STATE, request.method, request.path, request.body, reply, ApiError):
        raise ApiError(404, f"Invalid URL ({request.method} {request.path})")


ROUTES = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/embeddings"): embeddings,
    ("POST", "/v1/responses"): responses,
}


async def handle(request: Request, send: Send) -> None:
    """Authenticate, apply behaviour, dispatch."""
    method, path, body = request.method, request.path, request.body
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        raise _behavior_error(401)
    if (method, path) == ("GET", "/v1/models"):
        models = [{"id": m, "object": "model", "created": c, "owned_by": "system"} for m, c in MODELS]
        return await _send_json(send, 200, {"object": "list", "data": models})
    handler = ROUTES.get((method, path))
    if handler is None:
        raise ApiError(404, f"Invalid URL ({method} {path})")
    custom_message = STATE.behavior.get("error_message")
    behavior = await STATE.apply_behavior(lambda status: _behavior_error(status, custom_message))
    if not request.parsed or not isinstance(body, dict):
        raise ApiError(400, "We could not parse the JSON body of your request.")
    await handler(body, behavior, send)


async def _reply_error(send: Send, err: ApiError) -> None:
    extra = ((b"retry-after", b"1"),) if err.status == 429 else ()
    await _send_json(send, err.status, err.body(), extra)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI entry point: record, authenticate, apply behaviour, dispatch."""
    await json_app(scope, receive, send, state=STATE, control=control, handle=handle, reply_error=_reply_error)


def main(argv: list[str] | None = None) -> None:
    """CLI entry; a fixed port is required because the caller must know it before we start."""
    _serve(app, __doc__, argv)


if __name__ == "__main__":
    main()
