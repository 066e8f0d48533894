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

import argparse
import asyncio
import base64
import binascii
import json
import logging
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from tests.upstreams.openai_upstream import (
    DEFAULT_BEHAVIOR,
    Headers,
    Receive,
    Send,
    State,
    UpstreamProcess,
    expected_embedding,
    start_upstream_process,
)

__all__ = [
    "INVALID_KEY",
    "TOOL_ARGS",
    "GeminiUpstreamProcess",
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

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_BEHAVIOR_MESSAGES = {  # what generativelanguage.googleapis.com says for these
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}

# Field names per message (camelCase; proto JSON also accepts snake_case, and so do we).
_REQUEST = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
    "model",
}
_CONTENT = {"role", "parts"}
_PART = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
}
_PART_DATA = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
_BLOB = {"mimeType", "data", "displayName"}
_FILE_DATA = {"mimeType", "fileUri", "displayName"}
_FUNCTION_CALL = {"id", "name", "args"}
_FUNCTION_RESPONSE = {"id", "name", "response", "parts", "willContinue", "scheduling"}
_TOOL = {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext"}
_DECLARATION = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
_TOOL_CONFIG = {"functionCallingConfig"}
_CALLING_CONFIG = {"mode", "allowedFunctionNames"}
_GENERATION = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
    "imageConfig",
}
_SCHEMA = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
_SCHEMA_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_SAFETY = {"category", "threshold", "method"}
_EMBED_REQUEST = {"model", "content", "taskType", "title", "outputDimensionality"}
_TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}
_MODES = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"}
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_ROUTE = re.compile(r"^/(v1beta|v1)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")


class GoogleError(Exception):
    """Raised by handlers to answer with Google's error body ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.status, "message": self.message}
        err["status"] = _STATUS_NAMES.get(self.status, "UNKNOWN")
        if self.details:
            err["details"] = self.details
        return {"error": err}


def _invalid(message: str) -> GoogleError:
    return GoogleError(400, message)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _fields(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """``obj`` with keys in camelCase, or a 400 naming the first field the API would not know."""
    if not isinstance(obj, dict):
        raise _invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    out = {}
    for key, value in obj.items():
        camel = _camel(key)
        if camel not in allowed:
            raise _invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field.")
        out[camel] = value
    return out


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"Invalid JSON payload received. Expected a list at '{where}'.")
    return value


# --------------------------------------------------------------------------------------------- validation


def _check_schema(schema: Any, where: str) -> None:
    spec = _fields(schema, _SCHEMA, where)
    kind = spec.get("type")
    if kind is not None and str(kind).upper() not in _SCHEMA_TYPES:
        raise _invalid(
            f"Invalid value at '{where}.type' "
            f'(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "{kind}"'
        )
    properties = spec.get("properties")
    if str(kind).upper() == "OBJECT" and not properties:
        raise _invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (properties or {}).items():
        _check_schema(sub, f"{where}.properties[{name}]")
    if spec.get("items") is not None:
        _check_schema(spec["items"], f"{where}.items")
    for i, sub in enumerate(_list(spec.get("anyOf"), f"{where}.any_of")):
        _check_schema(sub, f"{where}.any_of[{i}]")
    if spec.get("enum") is not None and not all(isinstance(e, str) for e in spec["enum"]):
        raise _invalid(f"Invalid value at '{where}.enum': enum values must be strings")


def _check_part(raw: Any, where: str, role: str) -> dict[str, Any]:
    part = _fields(raw, _PART, where)
    data = [k for k in part if k in _PART_DATA]
    if len(data) != 1:
        raise _invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        )
    if "text" in part and not isinstance(part["text"], str):
        raise _invalid(f"Invalid value at '{where}.text' (TYPE_STRING)")
    if "inlineData" in part:
        blob = _fields(part["inlineData"], _BLOB, f"{where}.inline_data")
        if not blob.get("mimeType") or not blob.get("data"):
            raise _invalid(f"* GenerateContentRequest.{where}.inline_data: mime_type and data are required")
        try:
            base64.b64decode(str(blob["data"]), validate=True)
        except binascii.Error:
            raise _invalid(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
            ) from None
    if "fileData" in part:
        file_data = _fields(part["fileData"], _FILE_DATA, f"{where}.file_data")
        if not file_data.get("fileUri"):
            raise _invalid(f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is required")
    if "functionCall" in part:
        call = _fields(part["functionCall"], _FUNCTION_CALL, f"{where}.function_call")
        if role != "model":
            raise _invalid("Please ensure that function call parts are only in model turns.")
        if not call.get("name") or not isinstance(call.get("args", {}), dict):
            raise _invalid(
                f"* GenerateContentRequest.{where}.function_call: name is required and args must be an object"
            )
    if "functionResponse" in part:
        response = _fields(part["functionResponse"], _FUNCTION_RESPONSE, f"{where}.function_response")
        if not response.get("name"):
            raise _invalid(f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty.")
        if not isinstance(response.get("response"), dict):
            raise _invalid(
                f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
            )
    return part


def _check_content(raw: Any, where: str, *, system: bool = False) -> dict[str, Any]:
    content = _fields(raw, _CONTENT, where)
    role = content.get("role") or "user"
    if not system and role not in ("user", "model"):
        raise _invalid("Please use a valid role: user, model.")
    parts = _list(content.get("parts"), f"{where}.parts")
    if not parts:
        raise _invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    content["parts"] = [_check_part(p, f"{where}.parts[{i}]", role) for i, p in enumerate(parts)]
    content["role"] = role
    return content


def _check_turns(contents: list[dict[str, Any]]) -> None:
    """The real API's function-calling turn rules: responses come right after the calls, one per call."""
    for i, content in enumerate(contents):
        responses = [p for p in content["parts"] if "functionResponse" in p]
        if not responses:
            continue
        previous = contents[i - 1] if i else None
        calls = [p for p in previous["parts"] if "functionCall" in p] if previous else []
        if not calls:
            raise _invalid("Please ensure that function response turn comes immediately after a function call turn.")
        if len(calls) != len(responses):
            raise _invalid(
                "Please ensure that the number of function response parts is equal to the number of "
                "function call parts of the function call turn."
            )


def check_generate_request(body: Any) -> dict[str, Any]:
    """Validate a generateContent body as Google does; returns it with camelCase keys where we read them."""
    request = _fields(body, _REQUEST, "GenerateContentRequest")
    raw_contents = _list(request.get("contents"), "contents")
    if not raw_contents:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified")
    contents = [_check_content(c, f"contents[{i}]") for i, c in enumerate(raw_contents)]
    _check_turns(contents)
    request["contents"] = contents
    if request.get("systemInstruction") is not None:
        system = _check_content(request["systemInstruction"], "system_instruction", system=True)
        if any("text" not in p for p in system["parts"]):
            raise _invalid("* GenerateContentRequest.system_instruction: only text parts are allowed")
        request["systemInstruction"] = system
    names: list[str] = []
    tools = []
    for i, raw_tool in enumerate(_list(request.get("tools"), "tools")):
        tool = _fields(raw_tool, _TOOL, f"tools[{i}]")
        declarations = []
        for j, raw_decl in enumerate(_list(tool.get("functionDeclarations"), f"tools[{i}].function_declarations")):
            where = f"tools[{i}].function_declarations[{j}]"
            decl = _fields(raw_decl, _DECLARATION, where)
            if not _FUNCTION_NAME.match(str(decl.get("name") or "")):
                raise _invalid(
                    f"* GenerateContentRequest.{where}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a "
                    "maximum length of 64."
                )
            if decl.get("parameters") is not None:
                _check_schema(decl["parameters"], f"{where}.parameters")
            names.append(decl["name"])
            declarations.append(decl)
        tool["functionDeclarations"] = declarations
        tools.append(tool)
    request["tools"] = tools
    config = _fields(request.get("toolConfig") or {}, _TOOL_CONFIG, "tool_config")
    calling = _fields(config.get("functionCallingConfig") or {}, _CALLING_CONFIG, "tool_config.function_calling_config")
    mode = str(calling.get("mode") or "AUTO").upper()
    if mode not in _MODES:
        raise _invalid(f"Invalid value at 'tool_config.function_calling_config.mode', \"{calling.get('mode')}\"")
    allowed = _list(calling.get("allowedFunctionNames"), "tool_config.function_calling_config.allowed_function_names")
    if allowed and mode not in ("ANY", "VALIDATED"):
        raise _invalid(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
            "allowed_function_names should only be set when the Mode is ANY."
        )
    if any(name not in names for name in allowed):
        raise _invalid(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
            "must be names of declared functions."
        )
    request["toolConfig"] = {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": allowed}}
    for i, setting in enumerate(_list(request.get("safetySettings"), "safety_settings")):
        _fields(setting, _SAFETY, f"safety_settings[{i}]")
    generation = _fields(request.get("generationConfig") or {}, _GENERATION, "generation_config")
    if generation.get("responseSchema") is not None:
        if generation.get("responseMimeType") not in ("application/json", "text/x.enum"):
            raise _invalid(
                "* GenerateContentRequest.generation_config.response_mime_type: must be application/json or "
                "text/x.enum when response_schema is set."
            )
        _check_schema(generation["responseSchema"], "generation_config.response_schema")
    if len(_list(generation.get("stopSequences"), "generation_config.stop_sequences")) > 5:
        raise _invalid(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are allowed"
        )
    count = generation.get("candidateCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 8:
        raise _invalid("* GenerateContentRequest.generation_config.candidate_count: must be between 1 and 8")
    request["generationConfig"] = generation
    return request


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


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, payload: Any, extra: Headers = ()) -> None:
    data = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json; charset=UTF-8"),
        (b"content-length", str(len(data)).encode()),
        (b"server", b"scaffolding on HTTPServer2"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _stream(send: Send, pieces: list[bytes], behavior: dict[str, Any], content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    fail_after = behavior["fail_after_chunks"]
    for i, piece in enumerate(pieces):
        if fail_after is not None and i >= fail_after:
            return  # returning mid-body makes uvicorn drop the connection: a broken stream
        if i and behavior["chunk_delay_ms"]:
            await asyncio.sleep(behavior["chunk_delay_ms"] / 1000)
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


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
    request = _fields(raw, _EMBED_REQUEST, where)
    content = _check_content(request.get("content"), f"{where}.content")
    if any("text" not in p for p in content["parts"]):
        raise _invalid(f"* {where}.content: only text parts can be embedded by this model")
    task = request.get("taskType")
    if task is not None and task not in _TASK_TYPES:
        raise _invalid(f"Invalid value at '{where}.task_type', \"{task}\"")
    dims = request.get("outputDimensionality", EMBED_DIMENSIONS)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 3072:
        raise _invalid(f"* {where}.output_dimensionality: must be between 1 and 3072")
    return expected_embedding(_content_text(content), dims)


async def batch_embed_contents(
    model: str, body: Any, query: dict[str, str], behavior: dict[str, Any], send: Send
) -> None:
    request = _fields(body, {"requests"}, "BatchEmbedContentsRequest")
    items = _list(request.get("requests"), "requests")
    if not items:
        raise _invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    embeddings = []
    for i, item in enumerate(items):
        named = (item or {}).get("model") if isinstance(item, dict) else None
        if named != f"models/{model}":
            raise _invalid(
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


async def control(method: str, path: str, body: Any, send: Send) -> None:
    """Test-only routes; never recorded and never authenticated."""
    if (method, path) == ("GET", "/_health"):
        return await _send_json(send, 200, {"ok": True})
    if (method, path) == ("GET", "/_received"):
        return await _send_json(send, 200, STATE.received)
    if (method, path) == ("POST", "/_reset"):
        STATE.received.clear()
        STATE.behavior = dict(DEFAULT_BEHAVIOR)
        return await _send_json(send, 200, {"ok": True})
    if (method, path) == ("POST", "/_behavior"):
        if not isinstance(body, dict) or set(body) - set(DEFAULT_BEHAVIOR):
            raise _invalid(f"behavior must be an object with keys from {sorted(DEFAULT_BEHAVIOR)}")
        STATE.behavior = {**DEFAULT_BEHAVIOR, **body}
        return await _send_json(send, 200, STATE.behavior)
    raise GoogleError(404, f"Unknown control route {method} {path}")


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI entry point: record, authenticate, apply behaviour, validate, dispatch."""
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    query_string = scope["query_string"].decode()
    query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
    text = (await _read_body(receive)).decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
        parsed = True
    except ValueError:
        body, parsed = None, False
    try:
        if path.startswith("/_"):
            return await control(method, path, body, send)
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            headers[key] = f"{headers[key]}, {v.decode('latin-1')}" if key in headers else v.decode("latin-1")
        STATE.received.append(
            {"method": method, "path": path, "query": query_string, "headers": headers, "json": body, "body": text}
        )
        _authenticate(headers, query)
        route = _ROUTE.match(path)
        handler = METHODS.get(route["method"]) if route else None
        if route is None or handler is None or method != "POST":
            raise GoogleError(404, f"Method not found: {method} {path}")
        behavior = STATE.take_behavior()
        if behavior["delay_ms"]:
            await asyncio.sleep(behavior["delay_ms"] / 1000)
        if behavior["status"]:
            raise _behavior_error(int(behavior["status"]))
        if not parsed or not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Unexpected token.")
        await handler(route["model"], body, query, behavior, send)
    except GoogleError as err:
        await _send_json(send, err.status, err.body())


class GeminiUpstreamProcess(UpstreamProcess):
    """The OpenAI stand-in's process handle; ``root_url`` is what the google-genai SDK takes as base_url,
    ``base_url`` is the versioned prefix a Gemini provider config would point at."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        super().__init__(proc, port, log_path)
        self.base_url = f"{self.root_url}/v1beta"


def start_gemini_upstream(port: int | None = None, timeout: float = 15.0) -> GeminiUpstreamProcess:
    """Launch this stand-in as a subprocess (the shared launch loop in openai_upstream) and wait for it."""
    return start_upstream_process(port, timeout, module=MODULE, process_class=GeminiUpstreamProcess)


def main(argv: list[str] | None = None) -> None:
    """CLI entry; a fixed port is required because the caller must know it before we start."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.port <= 0:
        parser.error("--port must be a real port, not 0")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off", access_log=False)
    logging.getLogger("uvicorn.error").addFilter(lambda r: "without completing" not in r.getMessage())
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
