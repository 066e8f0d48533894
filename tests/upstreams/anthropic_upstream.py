"""A strict stand-in Anthropic Messages API for end-to-end tests.

Strict on purpose: it refuses what api.anthropic.com refuses (missing headers or fields, unknown
fields and content blocks, roles that do not alternate, tool results without their tool use), so a
translation bug in the gateway fails a test instead of passing quietly. It replies deterministically,
records every request, streams the exact SSE event sequence (ping included) and can be told to
misbehave via ``POST /_behavior``. It mirrors ``openai_upstream``; the shared plumbing is in ``asgi_kit``.

Run: ``python -m tests.upstreams.anthropic_upstream --host 127.0.0.1 --port 8124``
Control routes (no auth): ``GET /_health``, ``GET /_received``, ``POST /_reset``, ``POST /_behavior``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from tests.upstreams.asgi_kit import (
    SSE_HEADERS,
    Headers,
    Receive,
    Request,
    Send,
    StandInError,
    UpstreamProcess,
    control_route,
    json_app,
    send_json,
    start_upstream_process,
    stream,
)
from tests.upstreams.asgi_kit import State as _KitState
from tests.upstreams.asgi_kit import main as _serve

MODULE = "tests.upstreams.anthropic_upstream"
TOOL_INPUT = {"x": 1}
TOOL_INPUT_FRAGMENTS = ["", '{"x', '": 1}']  # Anthropic opens with an empty partial_json
DEFAULT_BEHAVIOR: dict[str, Any] = {
    "status": None,
    "delay_ms": 0,
    "chunk_delay_ms": 0,
    "fail_after_events": None,
    "error_after_events": None,
    "times": None,
}
ERROR_KINDS = {  # status -> (type, message), as api.anthropic.com words them
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
TOP_LEVEL = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
}
OVERLOADED = {"type": "overloaded_error", "message": "Overloaded"}
USER_BLOCKS = {"text", "image", "document", "tool_result"}
ASSISTANT_BLOCKS = {"text", "tool_use", "thinking", "redacted_thinking"}


class ApiError(StandInError):
    """Raised by handlers to answer with an Anthropic-shaped error body."""

    def __init__(self, status: int, message: str | None = None, type_: str | None = None) -> None:
        default_type, default_message = ERROR_KINDS.get(status, ("api_error", f"Simulated upstream error {status}"))
        super().__init__(status, message or default_message)
        self.type = type_ or default_type

    def body(self) -> dict[str, Any]:
        error = {"type": self.type, "message": self.message}
        return {"type": "error", "error": error, "request_id": f"req_{uuid.uuid4().hex[:24]}"}


class State(_KitState):
    """Process-wide recordings and behaviour; one event loop, so no locking is needed."""

    defaults = DEFAULT_BEHAVIOR


STATE = State()


def block_text(content: Any) -> str:
    """Text of a message's content: a string, or its text blocks (else tool result texts) joined by spaces."""
    if isinstance(content, str):
        return content
    blocks = [b for b in content or [] if isinstance(b, dict)]
    texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
    texts = texts or [block_text(b.get("content")) for b in blocks if b.get("type") == "tool_result"]
    return " ".join(texts)


def input_tokens(body: dict[str, Any]) -> int:
    """Deterministic input token count: a quarter of the characters of system and messages, plus one."""
    system = body.get("system")
    chars = len(system if isinstance(system, str) else block_text(system))
    return (chars + sum(len(block_text(m.get("content"))) for m in body["messages"])) // 4 + 1


def expected_reply(messages: list[dict[str, Any]]) -> str:
    """The deterministic reply text, exposed so tests can compute it too."""
    users = [m for m in messages if m.get("role") == "user"]
    return "anthropic reply to: " + (block_text(users[-1].get("content")) if users else "")


def chosen_tool(body: dict[str, Any]) -> str | None:
    """Name of the tool to call, or None for a text reply (no tools, or tool_choice none)."""
    tools, choice = body.get("tools"), body.get("tool_choice") or {}
    if not tools or choice.get("type") == "none":
        return None
    return str(choice["name"]) if choice.get("type") == "tool" else str(tools[0]["name"])


def _check_block(block: Any, where: str, allowed: set[str]) -> None:
    if not isinstance(block, dict) or block.get("type") not in allowed:
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        raise ApiError(
            400, f"{where}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags"
        )
    kind = block["type"]
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        raise ApiError(400, f"{where}: text content blocks must be non-empty")
    if kind in ("image", "document"):
        source = block.get("source") or {}
        ok = (source.get("type") == "base64" and source.get("media_type") and source.get("data")) or (
            source.get("type") == "url" and str(source.get("url", "")).startswith(("http://", "https://"))
        )
        # a plain-text document (Anthropic's "text" source): media_type text/plain and the text itself
        ok = ok or (kind == "document" and source.get("type") == "text" and source.get("media_type") == "text/plain"
                    and isinstance(source.get("data"), str))  # fmt: skip
        if not ok:
            raise ApiError(400, f"{where}.source: expected a base64 source with media_type and data, or a url")
    if kind == "tool_use" and not (block.get("id") and block.get("name") and isinstance(block.get("input"), dict)):
        raise ApiError(400, f"{where}: tool_use blocks need id, name and an object input")
    if kind == "tool_result" and not block.get("tool_use_id"):
        raise ApiError(400, f"{where}.tool_use_id: Field required")


def validate(body: dict[str, Any]) -> None:
    """Refuse what the real Messages API refuses, with messages worded like its own."""
    extra = sorted(set(body) - TOP_LEVEL)
    if extra:
        raise ApiError(400, f"{extra[0]}: Extra inputs are not permitted")
    for field in ("model", "messages", "max_tokens"):
        if field not in body:
            raise ApiError(400, f"{field}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise ApiError(400, "model: Input should be a valid string")
    if type(body["max_tokens"]) is not int or body["max_tokens"] < 1:
        raise ApiError(400, "max_tokens: Input should be a positive integer")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: at least one message is required")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        for i, block in enumerate(system if isinstance(system, list) else [None]):
            _check_block(block, f"system.{i}", {"text"})
    pending_tool_ids: set[str] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            raise ApiError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise ApiError(400, 'messages: first message must use the "user" role')
        if i and messages[i - 1]["role"] == role:
            alternate = 'messages: roles must alternate between "user" and "assistant"'
            raise ApiError(400, f'{alternate}, but found multiple "{role}" roles in a row')
        content = msg.get("content")
        if isinstance(content, str):
            if not content:
                raise ApiError(400, f"messages.{i}: user messages must have non-empty content")
            blocks: list[Any] = []
        elif isinstance(content, list) and content:
            blocks = content
        else:
            raise ApiError(400, f"messages.{i}.content: Input should be a non-empty string or list of content blocks")
        for j, block in enumerate(blocks):
            _check_block(block, f"messages.{i}.content.{j}", USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS)
        results = {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"}
        if results - pending_tool_ids:
            stray = sorted(results - pending_tool_ids)[0]
            raise ApiError(
                400,
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {stray}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
            )
        if pending_tool_ids - results:
            missing = sorted(pending_tool_ids - results)[0]
            raise ApiError(
                400,
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}",
            )
        pending_tool_ids = {b["id"] for b in blocks if b["type"] == "tool_use"}
    tools = body.get("tools") or []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            raise ApiError(400, f"tools.{i}: custom tools need a name and an input_schema object")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            raise ApiError(400, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if choice["type"] == "tool" and choice.get("name") not in {t["name"] for t in tools}:
            raise ApiError(400, "tool_choice.name: must name one of the provided tools")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 1):
        raise ApiError(400, "temperature: Input should be less than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)):
        raise ApiError(400, "stop_sequences: Input should be a list of non-empty strings")
    if set(body.get("metadata") or {}) - {"user_id"}:
        raise ApiError(400, "metadata: Extra inputs are not permitted")


def build_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The full non-streaming message; streaming replays the same content as events."""
    tool = chosen_tool(body)
    usage = {
        "input_tokens": input_tokens(body),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 0,
        "service_tier": "standard",
    }
    stop_reason, stop_sequence = "end_turn", None
    if tool:
        tool_id = "toolu_" + hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest()[:24]
        content: list[dict[str, Any]] = [{"type": "tool_use", "id": tool_id, "name": tool, "input": TOOL_INPUT}]
        stop_reason, usage["output_tokens"] = "tool_use", 5
    else:
        text = expected_reply(body["messages"])
        for seq in body.get("stop_sequences") or []:
            if seq in text:
                text, stop_reason, stop_sequence = text[: text.index(seq)], "stop_sequence", seq
        words = text.split(" ")
        if len(words) > body["max_tokens"]:
            words, stop_reason, stop_sequence = words[: body["max_tokens"]], "max_tokens", None
        content = [{"type": "text", "text": " ".join(words)}]
        usage["output_tokens"] = len(words)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


def stream_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The event sequence the real API sends for ``message``: start, blocks (ping after the first
    block starts), message_delta with the cumulative usage, stop."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening, words = {"type": "text", "text": ""}, block["text"].split(" ")
            deltas = [
                {"type": "text_delta", "text": w + (" " if i < len(words) - 1 else "")} for i, w in enumerate(words)
            ]
        else:
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in TOOL_INPUT_FRAGMENTS]
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage = {
        k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    }
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def api_key(headers: dict[str, str]) -> str:
    """The caller's key: ``x-api-key``, or ``Authorization: Bearer`` (what anthropic SDK 2.x sends)."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key", "").strip() or (bearer[7:].strip() if bearer.startswith("Bearer ") else "")


def _request_id() -> bytes:
    return f"req_{uuid.uuid4().hex[:24]}".encode()


async def _send_json(send: Send, status: int, payload: Any, extra: Headers = ()) -> None:
    await send_json(send, status, payload, [(b"request-id", _request_id()), *extra])


async def messages(body: dict[str, Any], behavior: dict[str, Any], send: Send) -> None:
    validate(body)
    message = build_reply(body)
    if not body.get("stream"):
        return await _send_json(send, 200, message)
    events = stream_events(message)
    error_after = behavior["error_after_events"]
    if error_after is not None and error_after < len(events):  # an error event replaces the rest of the stream
        events = [*events[: max(error_after, 0)], ("error", {"type": "error", "error": OVERLOADED})]
    pieces = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
    # fail_after_events drops the connection mid-body: no message_stop
    fail_after, delay = behavior["fail_after_events"], behavior["chunk_delay_ms"]
    headers = [*SSE_HEADERS, (b"request-id", _request_id())]
    await stream(send, pieces, headers, fail_after=fail_after, chunk_delay_ms=delay)


async def control(request: Request, send: Send) -> None:
    """Test-only routes; never recorded and never authenticated."""

    async def reply(status: int, payload: Any) -> None:
        await _send_json(send, status, payload)

    if not await control_route(STATE, request.method, request.path, request.body, reply, lambda m: ApiError(400, m)):
        raise ApiError(404)


async def handle(request: Request, send: Send) -> None:
    """Check headers, apply behaviour, dispatch."""
    headers, body = request.headers, request.body
    if not api_key(headers):
        raise ApiError(401)
    if not headers.get("anthropic-version"):
        raise ApiError(400, "anthropic-version: header is required")
    if (request.method, request.path) != ("POST", "/v1/messages"):
        raise ApiError(404)
    behavior = await STATE.apply_behavior(ApiError)
    if not request.parsed or not isinstance(body, dict):
        raise ApiError(400, "There was an error parsing the body of your request as JSON.")
    await messages(body, behavior, send)


async def _reply_error(send: Send, err: ApiError) -> None:
    extra = ((b"retry-after", b"1"),) if err.status == 429 else ()
    await _send_json(send, err.status, err.body(), extra)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI entry point: record, check headers, apply behaviour, dispatch."""
    await json_app(
        scope, receive, send, state=STATE, control=control, handle=handle, reply_error=_reply_error, merge_headers=False
    )


def main(argv: list[str] | None = None) -> None:
    """CLI entry; a fixed port is required because the caller must know it before we start."""
    _serve(app, __doc__, argv)


class AnthropicUpstreamProcess(UpstreamProcess):
    """The shared stand-in handle, except that Anthropic's base URL has no /v1 (SDKs add it)."""

    base_path = ""


def start_anthropic_process(port: int | None = None, timeout: float = 15.0) -> AnthropicUpstreamProcess:
    """Launch this stand-in as a subprocess (the shared launch loop in asgi_kit) and wait for it."""
    return start_upstream_process(port, timeout, module=MODULE, process_class=AnthropicUpstreamProcess)


if __name__ == "__main__":
    main()
