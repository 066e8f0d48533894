"""Direction B of the Gemini translation: the gateway's Gemini-compatible front door, where google-genai
clients call generateContent / streamGenerateContent and any provider that speaks OpenAI chat answers.

Pure dict -> dict mappers plus one stateful stream translator; Google also accepts snake_case field names
(its curl examples use them), so every reader here accepts both spellings.
"""

from __future__ import annotations

import json
from typing import Any

from server.translate.counts import count
from server.translate.errors import TranslationError
from server.translate.gemini_common import (
    AUDIO_FORMAT,
    JSON,
    MIME_BY_EXTENSION,
    as_list,
    camel,
    field,
    guess_mime,
    json_schema_from_gemini,
    text_of,
)

_GEMINI_FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _openai_part(part: JSON, param: str) -> JSON:
    if "text" in part:
        return {"type": "text", "text": str(part["text"])}
    inline = field(part, "inlineData")
    if isinstance(inline, dict):
        mime, data = str(field(inline, "mimeType") or ""), str(inline.get("data") or "")
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
        if mime.startswith("audio/"):
            fmt = AUDIO_FORMAT.get(mime)
            if fmt is None:
                raise TranslationError(f"audio type {mime} cannot be sent to this model (wav or mp3 only)", param=param)
            return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
        ext = next((e for e, m in MIME_BY_EXTENSION.items() if m == mime), "bin")
        filename = field(inline, "displayName") or f"file.{ext}"
        return {"type": "file", "file": {"filename": filename, "file_data": f"data:{mime};base64,{data}"}}
    file_data = field(part, "fileData")
    if isinstance(file_data, dict):
        uri = str(field(file_data, "fileUri") or "")
        mime = str(field(file_data, "mimeType") or guess_mime(uri, default=""))
        if mime.startswith("image/") and uri:
            return {"type": "image_url", "image_url": {"url": uri}}
        raise TranslationError("only image fileData can be sent to this model", param=param)
    raise TranslationError(f"part fields {sorted(part)} are not supported for this model", param=param)


def _response_text(response: Any) -> str:
    """A functionResponse.response as tool message content: a lone string result unwrapped, else JSON."""
    if isinstance(response, dict) and len(response) == 1:
        (key, value), *_ = response.items()
        if key in ("content", "output", "result") and isinstance(value, str):
            return value
    return json.dumps(response if response is not None else {})


def _chat_tools(tools: Any) -> list[JSON]:
    out = []
    for i, tool in enumerate(as_list(tools)):
        declarations = field(tool, "functionDeclarations")
        others = [k for k in (tool or {}) if camel(k) != "functionDeclarations"]
        if others:
            raise TranslationError(f"tool {others[0]!r} is not available for this model", param=f"tools[{i}]")
        for decl in as_list(declarations):
            fn: JSON = {"name": decl.get("name")}
            if decl.get("description"):
                fn["description"] = decl["description"]
            raw_json_schema = field(decl, "parametersJsonSchema")
            if raw_json_schema is not None:
                fn["parameters"] = raw_json_schema
            elif decl.get("parameters") is not None:
                fn["parameters"] = json_schema_from_gemini(decl["parameters"])
            else:
                fn["parameters"] = {"type": "object", "properties": {}}
            out.append({"type": "function", "function": fn})
    return out


def _chat_tool_choice(tool_config: Any) -> Any:
    calling = field(tool_config, "functionCallingConfig") or {}
    mode = str(calling.get("mode") or "").upper()
    allowed = as_list(field(calling, "allowedFunctionNames"))
    if mode == "NONE":
        return "none"
    if mode == "ANY":
        if len(allowed) == 1:
            return {"type": "function", "function": {"name": allowed[0]}}
        if allowed:
            tools = [{"type": "function", "function": {"name": n}} for n in allowed]
            return {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": tools}}
        return "required"
    if mode in ("AUTO", "VALIDATED"):
        return "auto"
    return None


def _chat_generation(cfg: Any, out: JSON) -> None:
    if not isinstance(cfg, dict):
        return
    for src, dst in (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("maxOutputTokens", "max_tokens"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("logprobs", "top_logprobs"),
    ):
        if field(cfg, src) is not None:
            out[dst] = field(cfg, src)
    if field(cfg, "candidateCount") not in (None, 1):  # many OpenAI-compatible servers refuse any `n`
        out["n"] = field(cfg, "candidateCount")
    if field(cfg, "stopSequences"):
        out["stop"] = list(field(cfg, "stopSequences"))
    if field(cfg, "responseLogprobs"):
        out["logprobs"] = True
    schema, json_schema = field(cfg, "responseSchema"), field(cfg, "responseJsonSchema")
    if schema is not None or json_schema is not None:
        converted = json_schema if json_schema is not None else json_schema_from_gemini(schema)
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": converted}}
    elif field(cfg, "responseMimeType") == "application/json":
        out["response_format"] = {"type": "json_object"}


def generate_content_request_to_chat(body: JSON, model: str) -> JSON:
    """A Gemini generateContent request body as an OpenAI chat completion request for `model`."""
    contents = field(body, "contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise TranslationError("* GenerateContentRequest.contents: contents is not specified", param="contents")
    messages: list[JSON] = []
    system = field(body, "systemInstruction")
    if isinstance(system, str):
        system = {"parts": [{"text": system}]}
    system_text = "\n".join(
        str(p.get("text")) for p in as_list(field(system, "parts")) if isinstance(p, dict) and "text" in p
    )
    if system_text:
        messages.append({"role": "system", "content": system_text})
    pending: dict[str, list[str]] = {}  # function name -> call ids still waiting for a response
    counter = 0
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise TranslationError("contents must be objects", param=where)
        role = content.get("role") or "user"
        parts = [p for p in as_list(content.get("parts")) if isinstance(p, dict)]
        if role == "model":
            texts, calls = [], []
            for j, part in enumerate(parts):
                call = field(part, "functionCall")
                if part.get("thought"):
                    continue
                if call:
                    call_id = str(call.get("id") or f"call_{counter}")
                    counter += 1
                    pending.setdefault(str(call.get("name")), []).append(call_id)
                    arguments = json.dumps(call.get("args") or {})
                    calls.append(
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": call.get("name"), "arguments": arguments},
                        }
                    )
                elif "text" in part:
                    texts.append(str(part["text"]))
                else:
                    raise TranslationError(
                        "model turns may hold only text and function calls", param=f"{where}.parts[{j}]"
                    )
            message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
            if calls:
                message["tool_calls"] = calls
            if texts or calls:
                messages.append(message)
        elif role in ("user", "function"):
            user_parts = []
            for j, part in enumerate(parts):
                response = field(part, "functionResponse")
                if response is None:
                    user_parts.append(_openai_part(part, f"{where}.parts[{j}]"))
                    continue
                queue = pending.get(str(response.get("name")), [])
                call_id = response.get("id") or (queue[0] if queue else None)
                if call_id is None:
                    raise TranslationError(
                        f"functionResponse {response.get('name')!r} does not answer a preceding functionCall",
                        param=f"{where}.parts[{j}]",
                    )
                if call_id in queue:
                    queue.remove(call_id)
                messages.append(
                    {"role": "tool", "tool_call_id": call_id, "content": _response_text(response.get("response"))}
                )
            if user_parts:
                only_text = all(p["type"] == "text" for p in user_parts)
                if only_text and len(user_parts) == 1:
                    messages.append({"role": "user", "content": user_parts[0]["text"]})
                else:
                    messages.append({"role": "user", "content": user_parts})
        else:
            raise TranslationError(f"Please use a valid role: user, model. (got {role!r})", param=f"{where}.role")
    out: JSON = {"model": model, "messages": messages}
    tools = _chat_tools(field(body, "tools"))
    if tools:
        out["tools"] = tools
        choice = _chat_tool_choice(field(body, "toolConfig"))
        if choice is not None:
            out["tool_choice"] = choice
    _chat_generation(field(body, "generationConfig"), out)
    return out


def gemini_usage(usage: JSON) -> JSON:
    """An OpenAI usage object as Gemini usageMetadata (reasoning tokens reported as thoughts); counts that
    are not sane integers read as 0 (the gateway meters such a usage as estimated anyway)."""
    completion_details = usage.get("completion_tokens_details")
    prompt_details = usage.get("prompt_tokens_details")
    prompt = count(usage.get("prompt_tokens")) or 0
    completion = count(usage.get("completion_tokens")) or 0
    reasoning = count(completion_details.get("reasoning_tokens")) or 0 if isinstance(completion_details, dict) else 0
    cached = count(prompt_details.get("cached_tokens")) or 0 if isinstance(prompt_details, dict) else 0
    meta: JSON = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(completion - reasoning, 0),
        "totalTokenCount": count(usage.get("total_tokens"), default=None) or prompt + completion,
    }
    if reasoning:
        meta["thoughtsTokenCount"] = reasoning
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def _gemini_finish(reason: Any) -> str:
    return "STOP" if reason is None else _GEMINI_FINISH.get(str(reason), "OTHER")


def _function_call_part(name: Any, arguments: Any) -> JSON | None:
    """A functionCall part, or None when the arguments are not a JSON object (a malformed call)."""
    try:
        args = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else (arguments or {})
    except ValueError:
        return None
    if not isinstance(args, dict):
        return None
    return {"functionCall": {"name": name, "args": args}}


def chat_to_generate_content_response(resp: JSON, model: str) -> JSON:
    """An OpenAI chat.completion as a Gemini GenerateContentResponse."""
    candidates = []
    for i, choice in enumerate(as_list(resp.get("choices"))):
        msg = choice.get("message") or {}
        text = text_of(msg.get("content")) or str(msg.get("refusal") or "")
        parts: list[JSON] = [{"text": text}] if text else []
        malformed = False
        for call in as_list(msg.get("tool_calls")):
            fn = call.get("function") or {}
            part = _function_call_part(fn.get("name"), fn.get("arguments"))
            if part is None:
                malformed = True
            else:
                parts.append(part)
        cand: JSON = {}
        if parts:
            cand["content"] = {"role": "model", "parts": parts}
        cand["finishReason"] = "MALFORMED_FUNCTION_CALL" if malformed else _gemini_finish(choice.get("finish_reason"))
        cand["index"] = choice.get("index", i)
        candidates.append(cand)
    out: JSON = {"candidates": candidates}
    if isinstance(resp.get("usage"), dict):
        out["usageMetadata"] = gemini_usage(resp["usage"])
    out["modelVersion"] = model
    if resp.get("id"):
        out["responseId"] = str(resp["id"])
    return out


class ChatStreamToGemini:
    """Turns chat.completion.chunks into streamGenerateContent fragments.

    Text deltas pass straight through as text parts. Tool-call argument fragments are accumulated and
    each call goes out as one complete functionCall part (Gemini never streams partial calls) in the
    closing fragment, which also carries finishReason and usageMetadata. That fragment waits for the
    usage chunk OpenAI sends right after the finish chunk, or for finish() when none comes.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._response_id: str | None = None
        self._seen: list[int] = []
        self._calls: dict[int, dict[int, JSON]] = {}  # choice -> tool call index -> {name, arguments}
        self._finish: dict[int, str] = {}
        self._usage: JSON | None = None
        self._closed = False

    def _fragment(self, candidates: list[JSON]) -> JSON:
        out: JSON = {"candidates": candidates, "modelVersion": self.model}
        if self._response_id:
            out["responseId"] = self._response_id
        return out

    def feed(self, chunk: JSON) -> list[JSON]:
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            raise TranslationError(
                f"upstream stream failed: {err.get('message') or 'unknown error'}",
                code="upstream_stream_error",
                status=502,
            )
        if self._response_id is None and chunk.get("id"):
            self._response_id = str(chunk["id"])
        out: list[JSON] = []
        for i, choice in enumerate(as_list(chunk.get("choices"))):
            index = int(choice.get("index", i))
            if index not in self._seen:
                self._seen.append(index)
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                out.append(self._fragment([{"content": {"role": "model", "parts": [{"text": text}]}, "index": index}]))
            for call in as_list(delta.get("tool_calls")):
                slot = self._calls.setdefault(index, {}).setdefault(
                    int(call.get("index", 0)), {"name": "", "arguments": ""}
                )
                fn = call.get("function") or {}
                if fn.get("name"):
                    slot["name"] = fn["name"]
                if fn.get("arguments"):
                    slot["arguments"] += fn["arguments"]
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        all_finished = bool(self._finish) and all(i in self._finish for i in self._seen)
        if self._usage is not None and all_finished and not self._closed:
            out += self._close()
        return out

    def _close(self) -> list[JSON]:
        self._closed = True
        candidates = []
        for index in sorted(set(self._seen) | set(self._finish) | set(self._calls)):
            parts, malformed = [], False
            for _, slot in sorted(self._calls.get(index, {}).items()):
                part = _function_call_part(slot["name"], slot["arguments"])
                malformed = malformed or part is None
                parts += [part] if part else []
            # Gemini's own final fragment always carries content (an empty text part at least), and
            # clients that read candidates[0].content.parts rely on it.
            cand: JSON = {"content": {"role": "model", "parts": parts or [{"text": ""}]}}
            if index in self._finish or malformed:
                cand["finishReason"] = "MALFORMED_FUNCTION_CALL" if malformed else _gemini_finish(self._finish[index])
            cand["index"] = index
            candidates.append(cand)
        if not candidates and self._usage is None:
            return []
        fragment = self._fragment(candidates)
        if self._usage is not None:
            fragment["usageMetadata"] = gemini_usage(self._usage)
        return [fragment]

    def finish(self) -> list[JSON]:
        """The closing fragment, if feed() has not already sent it."""
        return [] if self._closed else self._close()


def error_body(status: int, message: str) -> JSON:
    """An error in Google's shape, as the Gemini-compatible routes answer it."""
    return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}}
