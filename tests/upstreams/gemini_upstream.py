"""A strict stand-in for Google's Gemini API (generativelanguage v1beta) for end-to-end tests.

It validates requests the way the real API does (unknown fields, empty contents, function-call turn
order, schema keys Gemini rejects are all a 400 in Google's error shape), so a translation bug fails a
test instead of passing silently. It replies deterministically, records every request, and misbehaves on
demand through the same control routes as the OpenAI stand-in, whose State and UpstreamProcess it reuses.

Run: ``python -m tests.upstreams.gemini_upstream --host 127.0.0.1 --port 8124``
Give the google-genai SDK ``HttpOptions(base_url=<root url>)``; it appends ``/v1beta/models/...`` itself.
Control routes (no auth): ``GET /_health``, ``GET /_received``, ``POST /_reset``, ``POST /_behavior``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs

from tests.upstreams import asgi_kit as kit
from tests.upstreams.asgi_kit import Headers, Receive, Request, Send
from tests.upstreams.asgi_kit import main as _serve
from tests.upstreams.gemini_checks import (
    EMBED_REQUEST,
    TASK_TYPES,
    GoogleError,
    as_list,
    check_content,
    check_generate_request,
    fields,
    invalid,
)
from tests.upstreams.openai_upstream import State, UpstreamProcess, expected_embedding, start_upstream_process

__all__ = [
    "INVALID_KEY",
    "TOOL_ARGS",
    "GeminiUpstreamProcess",
    "GoogleError",
    "check_generate_request",
    "expected_embedding",
    "expected_reply",
    "prompt_tokens",
    "start_gemini_upstream",
]

MODULE = "tests.upstreams.gemini_upstream"
TOOL_ARGS = {"x": 1}
INVALID_KEY = "invalid-key"  # answered like a wrong key on the real API: 400 API_KEY_INVALID
EMBED_DIMENSIONS = 8
STATE = State()

_BEHAVIOR_MESSAGES = {  # what generativelanguage.googleapis.com says for these
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
_ROUTE = re.compile(r"^/(v1beta|v1)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")

# ------------------------------------------------------------------------------------------------ replies


def _content_text(content: dict[str, Any]) -> str:
    return " ".join(str(p["text"]) for p in content.get("parts", []) if isinstance(p, dict) and "text" in p)


def expected_reply(contents: list[dict[str, Any]]) -> str:
    """The deterministic reply text, exposed so tests can compute it too: the last user text echoed."""
    users = [
        c for c in contents if (c.get("role") or "user") == "user" and any("text" in p for p in c.get("parts", []))
    ]
    return "gemini reply to: " + (_content_text(users[-1]) if users else "")


def prompt_tokens(body: dict[str, Any]) -> int:
    """The promptTokenCount the stand-in reports: characters of every text part (system included) // 4 + 1."""
    contents = list(body.get("contents") or [])
    system = body.get("systemInstruction") or body.get("system_instruction")
    chars = sum(
        len(str(p.get("text", ""))) for c in [*contents, *([system] if system else [])] for p in c.get("parts", [])
    )
    return chars // 4 + 1


def _chosen_function(request: dict[str, Any]) -> str | None:
    """Name of the function to call, or None for a text reply (no tools, mode NONE, or answering a result)."""
    names = [d["name"] for t in request["tools"] for d in t["functionDeclarations"]]
    calling = request["toolConfig"]["functionCallingConfig"]
    last_turn = request["contents"][-1]
    if not names or calling["mode"] == "NONE" or any("functionResponse" in p for p in last_turn["parts"]):
        return None
    return (calling["allowedFunctionNames"] or names)[0]


def _usage(prompt: int, candidates: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }


def _reply_plan(request: dict[str, Any]) -> tuple[list[dict[str, Any]], str, int]:
    """(parts of one candidate, finishReason, candidate tokens); fragments for streaming are cut from it."""
    function = _chosen_function(request)
    if function:
        return [{"functionCall": {"name": function, "args": TOOL_ARGS}}], "STOP", 5
    text = expected_reply(request["contents"])
    generation = request["generationConfig"]
    if generation.get("responseMimeType") == "application/json":
        text = json.dumps({"reply": text})
    words = text.split(" ")
    limit = generation.get("maxOutputTokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        return [{"text": " ".join(words[:limit])}], "MAX_TOKENS", limit
    return [{"text": text}], "STOP", len(words)


def _candidates(parts: list[dict[str, Any]], finish: str | None, count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = i
        out.append(candidate)
    return out


def _fragments(request: dict[str, Any], model: str, omit_usage: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(stream fragments, whole response) for a validated request."""
    parts, finish, tokens = _reply_plan(request)
    count = request["generationConfig"].get("candidateCount", 1)
    prompt = prompt_tokens(request)
    base = {"modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    whole: dict[str, Any] = {"candidates": _candidates(parts, finish, count)}
    whole |= {} if omit_usage else {"usageMetadata": _usage(prompt, tokens * count)}
    whole |= base
    if "text" not in parts[0]:
        return [whole], whole
    words = parts[0]["text"].split(" ")
    fragments = []
    for i, word in enumerate(words):
        last = i == len(words) - 1
        piece = [{"text": word + ("" if last else " ")}]
        fragment: dict[str, Any] = {"candidates": _candidates(piece, finish if last else None, count)}
        if not omit_usage:
            fragment["usageMetadata"] = (
                _usage(prompt, tokens * count) if last else {"promptTokenCount": prompt, "totalTokenCount": prompt}
            )
        fragments.append(fragment | base)
    return fragments, whole


# ----------------------------------------------------------------------------------------------- handlers


async def _send_json(send: Send, status: int, payload: Any, extra: Headers = ()) -> None:
    headers = [(b"server", b"scaffolding on HTTPServer2"), *extra]
    await kit.send_json(send, status, payload, headers, content_type=b"application/json; charset=UTF-8")


async def _stream(send: Send, pieces: list[bytes], behavior: dict[str, Any], content_type: bytes) -> None:
    """Stream ``pieces``; ``fail_after_chunks`` drops the connection mid-body: a broken stream."""
    fail_after, delay = behavior["fail_after_chunks"], behavior["chunk_delay_ms"]
    await kit.stream(send, pieces, [(b"content-type", content_type)], fail_after=fail_after, chunk_delay_ms=delay)


async def generate_content(model: str, body: Any, query: dict[str, str], behavior: dict[str, Any], send: Send) -> None:
    request = check_generate_request(body)
    _, whole = _fragments(request, model, behavior["omit_usage"])
    await _send_json(send, 200, whole)


async def stream_generate_content(
    model: str, body: Any, query: dict[str, str], behavior: dict[str, Any], send: Send
) -> None:
    request = check_generate_request(body)
    fragments, _ = _fragments(request, model, behavior["omit_usage"])
    if query.get("alt") == "sse":
        pieces = [f"data: {json.dumps(f)}\r\n\r\n".encode() for f in fragments]
        return await _stream(send, pieces, behavior, b"text/event-stream")
    # without alt=sse Google streams one JSON array, element by element
    pieces = [("[" if i == 0 else "\n,\r\n").encode() + json.dumps(f).encode() for i, f in enumerate(fragments)]
    pieces.append(b"]")
    await _stream(send, pieces, behavior, b"application/json; charset=UTF-8")


def _embed_values(raw: Any, where: str) -> list[float]:
    request = fields(raw, EMBED_REQUEST, where)
    content = check_content(request.get("content"), f"{where}.content")
    if any("text" not in p for p in content["parts"]):
        raise invalid(f"* {where}.content: only text parts can be embedded by this model")
    task = request.get("taskType")
    if task is not None and task not in TASK_TYPES:
        raise invalid(f"Invalid value at '{where}.task_type', \"{task}\"")
    dims = request.get("outputDimensionality", EMBED_DIMENSIONS)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 3072:
        raise invalid(f"* {where}.output_dimensionality: must be between 1 and 3072")
    return expected_embedding(_content_text(content), dims)


async def batch_embed_contents(
    model: str, body: Any, query: dict[str, str], behavior: dict[str, Any], send: Send
) -> None:
    request = fields(body, {"requests"}, "BatchEmbedContentsRequest")
    items = as_list(request.get("requests"), "requests")
    if not items:
        raise invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    embeddings = []
    for i, item in enumerate(items):
        named = (item or {}).get("model") if isinstance(item, dict) else None
        if named != f"models/{model}":
            raise invalid(
                f"* BatchEmbedContentsRequest.requests[{i}].model: the model in the request ({named}) does not "
                f"match the model in the URL (models/{model})."
            )
        embeddings.append({"values": _embed_values(item, f"requests[{i}]")})
    await _send_json(send, 200, {"embeddings": embeddings})


async def embed_content(model: str, body: Any, query: dict[str, str], behavior: dict[str, Any], send: Send) -> None:
    await _send_json(send, 200, {"embedding": {"values": _embed_values(body, "EmbedContentRequest")}})


METHODS = {
    "generateContent": generate_content,
    "streamGenerateContent": stream_generate_content,
    "batchEmbedContents": batch_embed_contents,
    "embedContent": embed_content,
}


def _behavior_error(status: int) -> GoogleError:
    message = _BEHAVIOR_MESSAGES.get(status, f"Simulated upstream error {status}")
    details = None
    if status == 429:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
    return GoogleError(status, message, details)


def _authenticate(headers: dict[str, str], query: dict[str, str]) -> None:
    key = headers.get("x-goog-api-key") or query.get("key")
    if not key:
        if headers.get("authorization", "").lower().startswith("bearer "):
            raise GoogleError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                "other valid authentication credential.",
            )
        raise GoogleError(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
            "or other form of API consumer identity to call this API.",
        )
    if key == INVALID_KEY:
        reason = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        raise GoogleError(
            400, "API key not valid. Please pass a valid API key.", [reason | {"domain": "googleapis.com"}]
        )


async def control(request: Request, send: Send) -> None:
    """Test-only routes; never recorded and never authenticated."""

    async def reply(status: int, payload: Any) -> None:
        await _send_json(send, status, payload)

    if not await kit.control_route(STATE, request.method, request.path, request.body, reply, invalid):
        raise GoogleError(404, f"Unknown control route {request.method} {request.path}")


async def handle(request: Request, send: Send) -> None:
    """Authenticate, apply behaviour, validate, dispatch."""
    method, path, body = request.method, request.path, request.body
    query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
    _authenticate(request.headers, query)
    route = _ROUTE.match(path)
    handler = METHODS.get(route["method"]) if route else None
    if route is None or handler is None or method != "POST":
        raise GoogleError(404, f"Method not found: {method} {path}")
    behavior = await STATE.apply_behavior(_behavior_error)
    if not request.parsed or not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Unexpected token.")
    await handler(route["model"], body, query, behavior, send)


async def _reply_error(send: Send, err: GoogleError) -> None:
    await _send_json(send, err.status, err.body())


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI entry point: record, authenticate, apply behaviour, validate, dispatch."""
    await kit.json_app(scope, receive, send, state=STATE, control=control, handle=handle, reply_error=_reply_error)


def main(argv: list[str] | None = None) -> None:
    """CLI entry; a fixed port is required because the caller must know it before we start."""
    _serve(app, __doc__, argv)


class GeminiUpstreamProcess(UpstreamProcess):
    """The shared stand-in handle; ``root_url`` is what the google-genai SDK takes as base_url,
    ``base_url`` is the versioned prefix a Gemini provider config would point at."""

    base_path = "/v1beta"


def start_gemini_upstream(port: int | None = None, timeout: float = 15.0) -> GeminiUpstreamProcess:
    """Launch this stand-in as a subprocess (the shared launch loop in asgi_kit) and wait for it."""
    return start_upstream_process(port, timeout, module=MODULE, process_class=GeminiUpstreamProcess)


if __name__ == "__main__":
    main()
