"""Gemini <-> OpenAI chat translation, as pure functions from dict to dict.

Direction A (here) lets OpenAI-shaped calls reach a Gemini provider (generateContent,
streamGenerateContent, batchEmbedContents). Direction B (gemini_front, re-exported here so callers import
one module) lets google-genai clients on the gateway's Gemini-compatible front door reach any provider
that speaks OpenAI chat. Nothing does I/O or knows about HTTP frameworks, so every mapping is tested on
fixtures, and streams are translated fragment by fragment by small stateful objects.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from typing import Any

from server.translate.counts import add, count
from server.translate.errors import TranslationError
from server.translate.gemini_common import (
    AUDIO_MIME,
    JSON,
    as_list,
    field,
    gemini_schema,
    guess_mime,
    json_schema_from_gemini,
    loads_or_text,
    now_seconds,
    parse_data_url,
    text_of,
)
from server.translate.gemini_front import (
    ChatStreamToGemini,
    chat_to_generate_content_response,
    error_body,
    gemini_usage,
    generate_content_request_to_chat,
)

__all__ = [
    "ChatStreamToGemini",
    "GeminiStreamToChat",
    "batch_embed_to_embeddings",
    "chat_to_generate_content",
    "chat_to_generate_content_response",
    "chat_usage",
    "embeddings_to_batch_embed",
    "error_body",
    "gemini_schema",
    "gemini_usage",
    "generate_content_request_to_chat",
    "generate_content_to_chat",
    "json_schema_from_gemini",
]

_CHAT_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


# ------------------------------------------------------------- direction A: OpenAI chat -> Gemini provider


def _media_part(part: JSON, param: str) -> JSON:
    kind = part.get("type")
    if kind == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str) or not url:
            raise TranslationError("image_url.url must be a URL or data URL", param=f"{param}.image_url.url")
        if url.startswith("data:"):
            mime, data = parse_data_url(url, f"{param}.image_url.url")
            return {"inlineData": {"mimeType": mime, "data": data}}
        if url.startswith(("https://", "http://", "gs://")):
            return {"fileData": {"mimeType": guess_mime(url), "fileUri": url}}
        raise TranslationError("image_url.url must be an http(s) URL or a data URL", param=f"{param}.image_url.url")
    if kind == "input_audio":
        spec = part.get("input_audio") or {}
        mime = AUDIO_MIME.get(str(spec.get("format")))
        if mime is None or not spec.get("data"):
            raise TranslationError("input_audio needs base64 data and format wav or mp3", param=f"{param}.input_audio")
        return {"inlineData": {"mimeType": mime, "data": spec["data"]}}
    if kind == "file":
        spec = part.get("file") or {}
        data = spec.get("file_data")
        if not data:
            raise TranslationError(
                "file content parts must carry file_data by the time they reach Gemini",
                code="unresolved_file",
                param=f"{param}.file",
            )
        if data.startswith("data:"):
            mime, data = parse_data_url(data, f"{param}.file.file_data")
        else:
            mime = guess_mime(str(spec.get("filename") or ""), default="application/pdf")
        return {"inlineData": {"mimeType": mime, "data": data}}
    raise TranslationError(f"content part type {kind!r} is not supported by Gemini", param=f"{param}.type")


def _user_parts(content: Any, param: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError("content must be a string or an array of content parts", param=param)
    parts: list[JSON] = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        if not isinstance(part, dict):
            raise TranslationError("content parts must be objects", param=where)
        if part.get("type") == "text":
            if part.get("text"):
                parts.append({"text": str(part["text"])})
        elif part.get("type") == "refusal":
            parts.append({"text": str(part.get("refusal") or "")})
        else:
            parts.append(_media_part(part, where))
    return parts


def _call_args(arguments: Any, param: str) -> JSON:
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        raise TranslationError("tool call arguments must be a JSON object", param=param) from None
    if not isinstance(parsed, dict):
        raise TranslationError("tool call arguments must be a JSON object", param=param)
    return parsed


def _function_declarations(tools: Any) -> list[JSON]:
    declarations = []
    for i, tool in enumerate(as_list(tools)):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise TranslationError("only function tools can be sent to Gemini", param=f"tools[{i}]")
        if not fn.get("name"):
            raise TranslationError("function tools need a name", param=f"tools[{i}].function.name")
        decl: JSON = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = gemini_schema(fn.get("parameters"), f"tools[{i}].function.parameters")
        # Gemini rejects an OBJECT schema without properties; a function without parameters omits them.
        if params and not (params.get("type") == "OBJECT" and not params.get("properties")):
            decl["parameters"] = params
        declarations.append(decl)
    return declarations


def _tool_config(choice: Any, declarations: list[JSON]) -> tuple[JSON | None, list[JSON]]:
    """(functionCallingConfig or None, declarations possibly narrowed by an allowed_tools choice)."""
    if choice is None:
        return None, declarations
    if choice == "auto":
        return {"mode": "AUTO"}, declarations
    if choice == "none":
        return {"mode": "NONE"}, declarations
    if choice == "required":
        return {"mode": "ANY"}, declarations
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise TranslationError("tool_choice.function.name is required", param="tool_choice")
        return {"mode": "ANY", "allowedFunctionNames": [name]}, declarations
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools") or {}
        names = [(t.get("function") or {}).get("name") for t in as_list(spec.get("tools")) if isinstance(t, dict)]
        names = [n for n in names if n]
        if spec.get("mode") == "required":
            return {"mode": "ANY", "allowedFunctionNames": names}, declarations
        return {"mode": "AUTO"}, [d for d in declarations if d["name"] in names]
    raise TranslationError("tool_choice must be auto, none, required or name a function", param="tool_choice")


def _generation_config(body: JSON) -> JSON:
    cfg: JSON = {}
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("top_logprobs", "logprobs"),
    ):
        if body.get(src) is not None:
            cfg[dst] = body[src]
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if limit is not None:
        cfg["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        cfg["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("logprobs"):
        cfg["responseLogprobs"] = True
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        cfg["responseMimeType"] = "application/json"
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        cfg["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            cfg["responseSchema"] = gemini_schema(schema, "response_format.json_schema.schema")
    elif isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise TranslationError(f"response_format type {fmt.get('type')!r} is not supported", param="response_format")
    return cfg


def chat_to_generate_content(body: JSON) -> JSON:
    """An OpenAI chat completion request as a Gemini generateContent body (model and stream go in the URL)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty array", param="messages")
    system: list[JSON] = []
    contents: list[JSON] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, latest definition wins
    previous_role = None
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise TranslationError("messages must be objects", param=where)
        role = msg.get("role")
        if role in ("system", "developer"):
            text = text_of(msg.get("content"))
            if text:
                system.append({"text": text})
        elif role == "user":
            parts = _user_parts(msg.get("content"), f"{where}.content")
            if parts:
                contents.append({"role": "user", "parts": parts})
        elif role == "assistant":
            text = text_of(msg.get("content"))
            parts = [{"text": text}] if text else []
            calls = list(as_list(msg.get("tool_calls")))
            if isinstance(msg.get("function_call"), dict):  # the deprecated single-call form
                calls.append({"id": None, "type": "function", "function": msg["function_call"]})
            for j, call in enumerate(calls):
                fn = call.get("function") or {}
                if call.get("type", "function") != "function" or not fn.get("name"):
                    raise TranslationError(
                        "only function tool calls can be sent to Gemini", param=f"{where}.tool_calls"
                    )
                part: JSON = {
                    "functionCall": {
                        "name": fn["name"],
                        "args": _call_args(fn.get("arguments"), f"{where}.tool_calls[{j}].function.arguments"),
                    }
                }
                signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
                if signature:  # Gemini 3 requires its thought signature back on the call it made
                    part["thoughtSignature"] = signature
                parts.append(part)
                if call.get("id"):
                    call_names[call["id"]] = fn["name"]
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            name = msg.get("name") if role == "function" else call_names.get(str(msg.get("tool_call_id")))
            if not name:
                raise TranslationError(
                    "tool message does not answer a tool call made earlier in the conversation",
                    param=f"{where}.tool_call_id",
                )
            part = {
                "functionResponse": {
                    "name": name,
                    "response": {"content": loads_or_text(text_of(msg.get("content")))},
                }
            }
            if previous_role in ("tool", "function") and contents and contents[-1]["role"] == "user":
                contents[-1]["parts"].append(part)  # one function-response turn answers all calls of a model turn
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            raise TranslationError(f"unknown message role {role!r}", param=f"{where}.role")
        previous_role = role
    out: JSON = {}
    if not contents:  # only system messages: Gemini needs contents, so they become the user turn
        contents, system = [{"role": "user", "parts": system}], []
        if not contents[0]["parts"]:
            raise TranslationError("messages contain no content", param="messages")
    out["contents"] = contents
    if system:
        out["systemInstruction"] = {"parts": system}
    declarations = _function_declarations(body.get("tools"))
    calling, declarations = _tool_config(body.get("tool_choice"), declarations)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    if calling is not None and declarations:
        out["toolConfig"] = {"functionCallingConfig": calling}
    cfg = _generation_config(body)
    if cfg:
        out["generationConfig"] = cfg
    return out


def chat_usage(meta: JSON) -> JSON:
    """Gemini usageMetadata as an OpenAI usage object (thoughts count as completion, tool-use as prompt).
    A count that is not a sane integer makes its total None, which the gateway meters as estimated."""
    prompt = add(meta.get("promptTokenCount"), meta.get("toolUsePromptTokenCount"))
    thoughts = count(meta.get("thoughtsTokenCount"))
    completion = add(meta.get("candidatesTokenCount"), thoughts)
    total = count(meta.get("totalTokenCount"), default=None)
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": count(meta.get("cachedContentTokenCount"))},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _chat_finish(reason: Any, has_calls: bool) -> str:
    if reason in (None, "STOP", "FINISH_REASON_UNSPECIFIED") and has_calls:
        return "tool_calls"
    return _CHAT_FINISH.get(str(reason), "stop") if reason is not None else "stop"


def _tool_call(part: JSON, number: int) -> JSON:
    call = field(part, "functionCall") or {}
    out: JSON = {
        "id": f"call_{number}",
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": json.dumps(call.get("args") or {})},
    }
    signature = field(part, "thoughtSignature")
    if signature:  # carried the way Google's own OpenAI-compatible endpoint does, so clients echo it back
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _answer_parts(parts: list[Any]) -> tuple[list[str], list[JSON]]:
    """(visible text pieces, function-call parts) of a model content; thoughts are not answer text."""
    texts, calls = [], []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if field(part, "functionCall"):
            calls.append(part)
        elif "text" in part and not part.get("thought"):
            texts.append(str(part["text"]))
    return texts, calls


def generate_content_to_chat(resp: JSON, model: str) -> JSON:
    """A Gemini GenerateContentResponse as an OpenAI chat.completion."""
    choices = []
    number = 0
    candidates = as_list(resp.get("candidates"))
    for i, cand in enumerate(candidates):
        texts, call_parts = _answer_parts(as_list((cand.get("content") or {}).get("parts")))
        calls = []
        for part in call_parts:
            calls.append(_tool_call(part, number))
            number += 1
        message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": cand.get("index", i),
                "message": message,
                "logprobs": None,
                "finish_reason": _chat_finish(cand.get("finishReason"), bool(calls)),
            }
        )
    if not candidates and (resp.get("promptFeedback") or {}).get("blockReason"):
        message = {"role": "assistant", "content": None, "refusal": None}
        choices.append({"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"})
    out: JSON = {
        "id": "chatcmpl-" + str(resp.get("responseId") or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": now_seconds(),
        "model": model,
        "choices": choices,
    }
    if isinstance(resp.get("usageMetadata"), dict):
        out["usage"] = chat_usage(resp["usageMetadata"])
    return out


class GeminiStreamToChat:
    """Turns streamGenerateContent fragments (one parsed SSE data object each) into chat.completion.chunks.

    Gemini sends whole function calls in one fragment, so each becomes one complete tool_calls delta;
    every fragment repeats usageMetadata and the last one is the total, which finish() reports.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = now_seconds()
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> tool calls emitted so far
        self._numbered = 0
        self._usage: JSON | None = None
        self._emitted = False

    def _chunk(self, index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _start(self, index: int) -> list[JSON]:
        if index in self._started:
            return []
        self._started.add(index)
        return [self._chunk(index, {"role": "assistant", "content": ""})]

    def feed(self, chunk: JSON) -> list[JSON]:
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            raise TranslationError(
                f"Gemini stream failed: {err.get('message') or err.get('status') or 'unknown error'}",
                code="upstream_stream_error",
                status=502,
            )
        if not self._emitted and chunk.get("responseId"):
            self.id = "chatcmpl-" + str(chunk["responseId"])
        if isinstance(chunk.get("usageMetadata"), dict):
            self._usage = chunk["usageMetadata"]
        out: list[JSON] = []
        candidates = as_list(chunk.get("candidates"))
        for i, cand in enumerate(candidates):
            index = int(cand.get("index", i))
            out += self._start(index)
            texts, call_parts = _answer_parts(as_list((cand.get("content") or {}).get("parts")))
            text = "".join(texts)
            if text:
                out.append(self._chunk(index, {"content": text}))
            for part in call_parts:
                position = self._calls.get(index, 0)
                self._calls[index] = position + 1
                call = _tool_call(part, self._numbered)
                self._numbered += 1
                out.append(self._chunk(index, {"tool_calls": [{"index": position, **call}]}))
            if cand.get("finishReason"):
                reason = _chat_finish(cand["finishReason"], self._calls.get(index, 0) > 0)
                out.append(self._chunk(index, {}, reason))
        if not candidates and (chunk.get("promptFeedback") or {}).get("blockReason"):
            out += self._start(0)
            out.append(self._chunk(0, {}, "content_filter"))
        self._emitted = self._emitted or bool(out)
        return out

    def finish(self) -> list[JSON]:
        """The closing usage chunk (`choices: []`), when the stream reported any usage."""
        if self._usage is None:
            return []
        final = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
        return [{**final, "choices": [], "usage": chat_usage(self._usage)}]


def embeddings_to_batch_embed(body: JSON, model: str) -> JSON:
    """An OpenAI embeddings request as a batchEmbedContents body (text only: Gemini takes no token ids)."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise TranslationError("'input' must be a non-empty string or array of strings", param="input")
    if any(isinstance(v, (int, list)) for v in items):
        raise TranslationError(
            "Gemini embedding models take text; token-array input is not supported",
            code="unsupported_input",
            param="input",
        )
    if not all(isinstance(v, str) and v for v in items):
        raise TranslationError("'input' must contain only non-empty strings", param="input")
    name = model if model.startswith("models/") else f"models/{model}"
    dims = body.get("dimensions")
    requests = []
    for text in items:
        request: JSON = {"model": name, "content": {"parts": [{"text": text}]}}
        if dims is not None:
            request["outputDimensionality"] = dims
        requests.append(request)
    return {"requests": requests}


def batch_embed_to_embeddings(resp: JSON, model: str, encoding_format: str, prompt_tokens: int) -> JSON:
    """A batchEmbedContents response as an OpenAI embeddings list; base64 is little-endian float32."""
    if encoding_format not in ("float", "base64"):
        raise TranslationError("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    embeddings = resp.get("embeddings")
    if not isinstance(embeddings, list):
        raise TranslationError("Gemini returned no embeddings", code="upstream_invalid_response", status=502)
    data = []
    for i, item in enumerate(embeddings):
        values = [float(v) for v in (item or {}).get("values") or []]
        vector: Any = values
        if encoding_format == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}
