"""OpenAI chat ↔ Anthropic Messages, both ways, as pure functions and small stream state machines.

Direction A serves OpenAI-shaped clients from an Anthropic provider; direction B serves Anthropic-SDK
clients (the /v1/messages front door) from any provider that speaks OpenAI chat. This is translation,
not pass-through: fields with no counterpart are dropped. Stream translators are fed one parsed event
at a time and return what to emit now, so nothing is buffered beyond the current content block.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from server.translate.counts import add, count
from server.translate.errors import TranslationError

JSON = dict[str, Any]

_FINISH_FROM_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_STOP_FROM_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_JSON_ONLY = "Respond with a single valid JSON object only: no prose, no explanations, no Markdown code fences."


# ---------------------------------------------------------------- direction A: OpenAI chat → Anthropic


def _text_of(content: Any) -> str:
    """A system/developer/tool message's text: a string, or its text parts joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise TranslationError("message content must be a string or an array of content parts", param="messages")


def _data_url(url: str) -> tuple[str, str]:
    """Split ``data:<media>;base64,<data>`` into (media_type, data)."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise TranslationError("data URLs must look like data:<media type>;base64,<data>", param="messages")
    return head[5:-7], data


def _part_to_block(part: Any) -> JSON | None:
    """One OpenAI content part as an Anthropic content block (None for an empty text part)."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("text", "refusal"):
        text = part.get(kind) or ""
        return {"type": "text", "text": text} if text else None
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url") or ""
        if url.startswith("data:"):
            media_type, data = _data_url(url)
            return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
        if url.startswith(("https://", "http://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        raise TranslationError("image_url.url must be an http(s) URL or a base64 data URL", param="messages")
    if kind == "input_audio":
        raise TranslationError(
            "The routed model cannot take audio input.", code="audio_not_supported_by_model", param="messages"
        )
    if kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:application/pdf"):
        media_type, data = _data_url(part["file"]["file_data"])
        return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:text/"):
        media_type, data = _data_url(part["file"]["file_data"])  # a text document: Anthropic takes its text
        text = base64.b64decode(data).decode("utf-8", errors="replace")
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    raise TranslationError(f"content part type {kind!r} is not supported by this model", param="messages")


def _content_blocks(content: Any) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [b for b in map(_part_to_block, content) if b is not None]
    raise TranslationError("message content must be a string or an array of content parts", param="messages")


def _tool_use(call: Any) -> JSON:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not fn.get("name"):
        raise TranslationError("tool_calls entries need a function with a name", param="messages")
    raw = fn.get("arguments") or "{}"
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise TranslationError(f"tool call arguments are not valid JSON: {exc}", param="messages") from exc
    return {"type": "tool_use", "id": call.get("id") or "", "name": fn["name"], "input": args}


def _turns(messages: list[Any]) -> tuple[list[str], list[JSON]]:
    """System texts and alternating user/assistant turns; consecutive same-role turns are merged."""
    system: list[str] = []
    turns: list[JSON] = []
    for msg in messages:
        role = msg.get("role") if isinstance(msg, dict) else None
        if role in ("system", "developer"):
            system.append(_text_of(msg.get("content")))
            continue
        if role == "tool":
            text = _text_of(msg.get("content"))
            block: JSON = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id") or ""}
            blocks = [block | ({"content": text} if text else {})]
            role = "user"
        elif role == "user":
            blocks = _content_blocks(msg.get("content"))
        elif role == "assistant":
            blocks = _content_blocks(msg.get("content")) + [_tool_use(c) for c in msg.get("tool_calls") or []]
        else:
            raise TranslationError(f"unsupported message role {role!r}", param="messages")
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty OpenAI message carries nothing anyway
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    out: JSON | None
    if choice is None:
        out = {"type": "auto"} if parallel is False else None
    elif choice in ("auto", "required", "none"):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise TranslationError("tool_choice must be auto, required, none or a named function", param="tool_choice")
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _tools(tools: list[Any]) -> list[JSON]:
    out = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise TranslationError("only function tools with a name are supported for this model", param="tools")
        spec: JSON = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object"}}
        out.append(spec | ({"description": fn["description"]} if fn.get("description") else {}))
    return out


def chat_to_messages(body: JSON, model: str, default_max_tokens: int) -> JSON:
    """An OpenAI chat.completions request as an Anthropic Messages request for ``model``."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty array", param="messages")
    if (body.get("n") or 1) != 1:
        raise TranslationError("this model returns one choice per request; n must be 1", param="n")
    system, turns = _turns(messages)
    if not turns:
        raise TranslationError("messages need at least one user or assistant message", param="messages")
    # Anthropic has no native JSON mode on the Messages API, so JSON mode becomes a system instruction.
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        system.append(_JSON_ONLY)
    elif fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        system.append(f"{_JSON_ONLY} The object must conform to this JSON Schema:\n{json.dumps(schema)}")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    out: JSON = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if any(system):
        out["system"] = "\n\n".join(s for s in system if s)
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        out |= {"tool_choice": choice} if choice else {}
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        # OpenAI allows 0..2, Anthropic 0..1: clamp rather than forward a value the provider rejects.
        out["temperature"] = min(float(body["temperature"]), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("stream"):
        out["stream"] = True
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    return out


def _chat_usage(usage: JSON) -> JSON:
    """Anthropic usage in OpenAI terms: prompt tokens include cache reads and cache writes. A count that
    is not a sane integer makes its total None, which the gateway meters as estimated."""
    read, written = count(usage.get("cache_read_input_tokens")), count(usage.get("cache_creation_input_tokens"))
    prompt = add(usage.get("input_tokens"), read, written)
    out = count(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": out,
        "total_tokens": prompt + out if prompt is not None and out is not None else None,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_input_tokens": written},
    }


def messages_to_chat(resp: JSON, model: str, *, created: int | None = None) -> JSON:
    """An Anthropic Messages response as an OpenAI chat.completion."""
    blocks = resp.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [
        {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b.get("input"))}}
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message: JSON = {"role": "assistant", "content": text or None, "refusal": None}
    message |= {"tool_calls": calls} if calls else {}
    finish = _FINISH_FROM_STOP.get(resp.get("stop_reason") or "end_turn", "stop")
    return {
        "id": f"chatcmpl-{resp.get('id', '')}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _chat_usage(resp.get("usage") or {}),
    }


class MessagesStreamToChat:
    """Anthropic stream events in, OpenAI chat.completion.chunk dicts out, one event at a time."""

    def __init__(self, model: str, *, created: int | None = None) -> None:
        self.model = model
        self.created = int(time.time()) if created is None else created
        self.id = "chatcmpl-"
        self.usage: JSON = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool_calls index
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        base = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
        return base | {"choices": [choice]}

    def feed(self, event: JSON) -> list[JSON]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = f"chatcmpl-{message.get('id', '')}"
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block, index = event.get("content_block") or {}, int(event.get("index", 0))
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            if block.get("type") != "tool_use":
                return []
            position = self._tool_index[index] = len(self._tool_index)
            fn = {"name": block.get("name", ""), "arguments": ""}
            call = {"index": position, "id": block.get("id", ""), "type": "function", "function": fn}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "content_block_delta":
            delta, index = event.get("delta") or {}, int(event.get("index", 0))
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
                fragment = {"index": self._tool_index[index], "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [fragment]})]
            return []  # thinking, signature and citation deltas have no chat-completions counterpart
        if kind == "message_delta":
            # message_delta usage counts are cumulative: they overwrite, and absent ones keep message_start's
            self.usage |= {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            stop = (event.get("delta") or {}).get("stop_reason") or "end_turn"
            return [self._chunk({}, _FINISH_FROM_STOP.get(stop, "stop"))]
        if kind == "message_stop":
            self._done = True
            base = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
            return [base | {"choices": [], "usage": _chat_usage(self.usage)}]
        if kind == "error":
            error = event.get("error") or {}
            message = f"upstream stream error: {error.get('type', 'error')}: {error.get('message', '')}"
            raise TranslationError(message, code="upstream_stream_error", status=502)
        return []  # ping, and event types added after this was written


# ---------------------------------------------------------------- direction B: Anthropic → OpenAI chat


def _anthropic_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _block_to_part(block: JSON) -> JSON:
    kind, source = block.get("type"), block.get("source") or {}
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image" and source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "image" and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url", "")}}
    if kind == "document" and source.get("type") == "base64":
        data = f"data:{source.get('media_type', 'application/pdf')};base64,{source.get('data', '')}"
        return {"type": "file", "file": {"filename": block.get("title") or "document.pdf", "file_data": data}}
    if kind == "document" and source.get("type") == "text":
        return {"type": "text", "text": source.get("data", "")}
    raise TranslationError(f"content block type {kind!r} is not supported by this model", param="messages")


def _user_messages(content: Any) -> list[JSON]:
    """One Anthropic user turn: tool results become role "tool" messages, the rest one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[JSON] = []
    parts: list[JSON] = []
    for block in content or []:
        if block.get("type") == "tool_result":
            text = _anthropic_text(block.get("content"))
            text = f"Error: {text}" if block.get("is_error") else text
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text})
        else:
            parts.append(_block_to_part(block))
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: Any) -> JSON:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = "".join(b.get("text", "") for b in content or [] if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in content or []
        if b.get("type") == "tool_use"
    ]
    return {"role": "assistant", "content": text or None} | ({"tool_calls": calls} if calls else {})


def _chat_tool_choice(choice: JSON) -> Any:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind or "auto", "auto")


def messages_request_to_chat(body: JSON) -> JSON:
    """An Anthropic Messages request as an OpenAI chat.completions request (model name unchanged)."""
    if not isinstance(body.get("messages"), list):
        raise TranslationError("messages: field required", param="messages")
    out_messages: list[JSON] = []
    system = _anthropic_text(body.get("system"))
    if system:
        out_messages.append({"role": "system", "content": system})
    for msg in body["messages"]:
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "user":
            out_messages.extend(_user_messages(msg.get("content")))
        elif role == "assistant":
            out_messages.append(_assistant_message(msg.get("content")))
        else:
            raise TranslationError(f"unexpected role {role!r}; roles must be user or assistant", param="messages")
    out: JSON = {"model": body.get("model"), "messages": out_messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("tools"):
        tools = []
        for tool in body["tools"]:
            if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
                raise TranslationError(f"tool type {tool.get('type')!r} is not supported by this model", param="tools")
            fn = {"name": tool.get("name", ""), "parameters": tool["input_schema"]}
            tools.append(
                {
                    "type": "function",
                    "function": fn | ({"description": tool["description"]} if tool.get("description") else {}),
                }
            )
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = _chat_tool_choice(choice)
        if choice.get("disable_parallel_tool_use") and body.get("tools"):
            out["parallel_tool_calls"] = False
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        out["user"] = user_id
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _parse_arguments(raw: str | None) -> Any:
    """Tool-call arguments as an object; text that is not JSON (say, cut off at max_tokens) is kept, not lost."""
    try:
        return json.loads(raw or "{}")
    except ValueError:
        return {"_raw_arguments": raw}


def _anthropic_usage(usage: JSON | None) -> JSON:
    """OpenAI usage in Anthropic terms: input_tokens excludes cache reads and writes, as Anthropic counts it."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = count(details.get("cached_tokens")) or 0
    written = count(details.get("cache_creation_input_tokens")) or 0
    return {
        "input_tokens": max((count(usage.get("prompt_tokens")) or 0) - read - written, 0),
        "output_tokens": count(usage.get("completion_tokens")) or 0,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
    }


def _message_id(chat_id: str) -> str:
    return "msg_" + chat_id.removeprefix("chatcmpl-")


def chat_to_messages_response(resp: JSON, model: str) -> JSON:
    """An OpenAI chat.completion as an Anthropic message object."""
    choices = resp.get("choices") or [{}]
    message = choices[0].get("message") or {}
    content: list[JSON] = []
    text = message.get("content") or message.get("refusal")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = _parse_arguments(fn.get("arguments"))
        content.append({"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""), "input": args})
    return {
        "id": _message_id(str(resp.get("id", ""))),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content or [{"type": "text", "text": ""}],
        "stop_reason": _STOP_FROM_FINISH.get(choices[0].get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _anthropic_usage(resp.get("usage")),
    }


class ChatStreamToMessages:
    """OpenAI chat.completion.chunk dicts in, Anthropic (event name, data) pairs out, in Anthropic's order.

    message_delta waits for the usage chunk that follows the finish chunk (we ask for it with
    stream_options.include_usage); ``finish()`` ends the message when the upstream stream ends cleanly.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._started = False
        self._open: tuple[str, int] | None = None  # ("text", -1) or ("tool", OpenAI tool index)
        self._next_index = 0
        self._finish: str | None = None
        self._usage: JSON | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _start(self, chat_id: str) -> list[tuple[str, JSON]]:
        self._started = True
        message = {
            "id": _message_id(chat_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[tuple[str, JSON]]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._next_index - 1})]

    def _open_block(self, key: tuple[str, int], block: JSON) -> list[tuple[str, JSON]]:
        events = self._close()
        self._open = key
        self._next_index += 1
        start = {"type": "content_block_start", "index": self._next_index - 1, "content_block": block}
        return [*events, ("content_block_start", start)]

    def _delta(self, delta: JSON) -> tuple[str, JSON]:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._next_index - 1, "delta": delta})

    def _end(self) -> list[tuple[str, JSON]]:
        self._done = True
        stop = _STOP_FROM_FINISH.get(self._finish or "stop", "end_turn")
        usage = _anthropic_usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}
        return [("message_delta", delta), ("message_stop", {"type": "message_stop"})]

    def feed(self, chunk: JSON) -> list[tuple[str, JSON]]:
        if self._done:
            return []
        events = [] if self._started else self._start(str(chunk.get("id", "")))
        for choice in (chunk.get("choices") or [])[:1]:
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                if self._open != ("text", -1):
                    events += self._open_block(("text", -1), {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                key, fn = ("tool", int(call.get("index", 0))), call.get("function") or {}
                if self._open != key:
                    block = {"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""), "input": {}}
                    events += self._open_block(key, block)
                if fn.get("arguments"):
                    events.append(self._delta({"type": "input_json_delta", "partial_json": fn["arguments"]}))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                events += self._close()
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if self._finish and self._usage is not None:
            events += self._end()
        return events

    def finish(self) -> list[tuple[str, JSON]]:
        """Close whatever is open and end the message, if the chunks have not ended it already."""
        if self._done:
            return []
        events = [] if self._started else self._start("")
        return events + self._close() + self._end()


def error_body(status: int, message: str) -> JSON:
    """An error in Anthropic's shape; statuses without a type of their own are api_error."""
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}
