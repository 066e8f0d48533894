"""The gist of any answer the gateway stores or replays, whatever its shape (OpenAI chat, Anthropic Message,
Gemini response, OpenAI Response): its text, its tool calls, its finish reason and the model that served
it. Replay diffs these; nothing here bills."""

from __future__ import annotations

import json
from typing import Any

JSON = dict[str, Any]


def _items(value: Any) -> list[JSON]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _call(name: Any, arguments: Any) -> JSON:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, sort_keys=True)
    return {"name": str(name or ""), "arguments": arguments}


def gist(answer: Any) -> JSON:
    """{"text", "tool_calls": [{"name", "arguments"}], "finish_reason", "model"} of an answer."""
    if not isinstance(answer, dict):
        return {"text": "", "tool_calls": [], "finish_reason": None, "model": None}
    texts: list[str] = []
    calls: list[JSON] = []
    finish: Any = None
    if "choices" in answer:  # OpenAI chat completion
        for choice in _items(answer.get("choices")):
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            if isinstance(message.get("content"), str):
                texts.append(message["content"])
            for call in _items(message.get("tool_calls")):
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                calls.append(_call(function.get("name"), function.get("arguments")))
            finish = finish or choice.get("finish_reason")
    elif "candidates" in answer:  # Gemini
        for candidate in _items(answer.get("candidates")):
            content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
            for part in _items(content.get("parts")):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                if isinstance(part.get("functionCall"), dict):
                    calls.append(_call(part["functionCall"].get("name"), part["functionCall"].get("args")))
            finish = finish or candidate.get("finishReason")
    elif "output" in answer:  # OpenAI Response
        for item in _items(answer.get("output")):
            if item.get("type") == "function_call":
                calls.append(_call(item.get("name"), item.get("arguments")))
            for part in _items(item.get("content")):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
        finish = answer.get("status")
    else:  # Anthropic Message
        for block in _items(answer.get("content")):
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            if block.get("type") == "tool_use":
                calls.append(_call(block.get("name"), block.get("input")))
        finish = answer.get("stop_reason")
    model = answer.get("model") or answer.get("modelVersion")
    return {"text": "".join(texts), "tool_calls": calls, "finish_reason": finish, "model": model}
