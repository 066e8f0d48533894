"""What a stream added up to, assembled as it passes: the whole answer the request log stores (and replay
compares), in the shape of the events it was built from. Each assembler is fed the same events the
stream's adapter sees, one at a time, and keeps only text, tool calls, finish reasons and usage.

- ChatTranscript:     OpenAI chat chunks      -> a chat.completion
- MessageTranscript:  Anthropic events        -> a Message
- GeminiTranscript:   Gemini fragments        -> a GenerateContentResponse
- ResponseTranscript: Responses events        -> the final Response (its terminal event carries it)
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def _items(value: Any) -> list[JSON]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


class ChatTranscript:
    def __init__(self) -> None:
        self._head: JSON = {}
        self._choices: dict[int, JSON] = {}
        self._usage: Any = None

    def feed(self, chunk: JSON) -> None:
        if not self._head:
            self._head = {k: chunk[k] for k in ("id", "model", "created") if k in chunk}
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        for choice in _items(chunk.get("choices")):
            index = choice.get("index") if isinstance(choice.get("index"), int) else 0
            state = self._choices.setdefault(index, {"text": [], "calls": {}, "finish_reason": None})
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if isinstance(delta.get("content"), str):
                state["text"].append(delta["content"])
            for call in _items(delta.get("tool_calls")):
                slot = state["calls"].setdefault(call.get("index", 0), {"id": None, "name": "", "arguments": []})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                slot["name"] += function.get("name") or "" if isinstance(function.get("name"), str) else ""
                if isinstance(function.get("arguments"), str):
                    slot["arguments"].append(function["arguments"])
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def result(self) -> JSON:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: JSON = {"role": "assistant", "content": "".join(state["text"]) or None}
            calls = [
                {
                    "id": slot["id"],
                    "type": "function",
                    "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
                }
                for _, slot in sorted(state["calls"].items())
            ]
            if calls:
                message["tool_calls"] = calls
            choices.append({"index": index, "message": message, "finish_reason": state["finish_reason"]})
        return {**self._head, "object": "chat.completion", "choices": choices, "usage": self._usage}


class MessageTranscript:
    def __init__(self) -> None:
        self._message: JSON = {}
        self._blocks: dict[int, JSON] = {}
        self._json: dict[int, list[str]] = {}

    def feed(self, event: tuple[str, JSON]) -> None:
        name, data = event
        if name == "message_start" and isinstance(data.get("message"), dict):
            self._message = dict(data["message"])
        elif name == "content_block_start" and isinstance(data.get("content_block"), dict):
            self._blocks[data.get("index", 0)] = dict(data["content_block"])
        elif name == "content_block_delta" and isinstance(data.get("delta"), dict):
            block = self._blocks.setdefault(data.get("index", 0), {"type": "text", "text": ""})
            delta = data["delta"]
            if isinstance(delta.get("text"), str):
                block["text"] = (block.get("text") or "") + delta["text"]
            if isinstance(delta.get("partial_json"), str):
                self._json.setdefault(data.get("index", 0), []).append(delta["partial_json"])
        elif name == "message_delta":
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            self._message["stop_reason"] = delta.get("stop_reason")
            if isinstance(data.get("usage"), dict):
                self._message["usage"] = {**(self._message.get("usage") or {}), **data["usage"]}

    def result(self) -> JSON:
        blocks = []
        for index in sorted(self._blocks):
            block = dict(self._blocks[index])
            if index in self._json:
                block["input"] = "".join(self._json[index])
            blocks.append(block)
        return {**self._message, "content": blocks}


class GeminiTranscript:
    def __init__(self) -> None:
        self._candidates: dict[int, JSON] = {}
        self._last: JSON = {}

    def feed(self, fragment: JSON) -> None:
        self._last = {k: fragment[k] for k in ("usageMetadata", "modelVersion", "responseId") if k in fragment}
        for position, candidate in enumerate(_items(fragment.get("candidates"))):
            index = candidate.get("index") if isinstance(candidate.get("index"), int) else position
            state = self._candidates.setdefault(index, {"text": [], "calls": [], "finishReason": None})
            content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
            for part in _items(content.get("parts")):
                if isinstance(part.get("text"), str):
                    state["text"].append(part["text"])
                elif isinstance(part.get("functionCall"), dict):
                    state["calls"].append({"functionCall": part["functionCall"]})
            if candidate.get("finishReason"):
                state["finishReason"] = candidate["finishReason"]

    def result(self) -> JSON:
        candidates = []
        for index in sorted(self._candidates):
            state = self._candidates[index]
            parts = ([{"text": "".join(state["text"])}] if state["text"] else []) + state["calls"]
            content = {"role": "model", "parts": parts}
            candidates.append({"index": index, "content": content, "finishReason": state["finishReason"]})
        return {"candidates": candidates, **self._last}


class ResponseTranscript:
    TERMINAL = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self) -> None:
        self._response: JSON = {}
        self._text: list[str] = []

    def feed(self, event: tuple[str, JSON]) -> None:
        name, data = event
        if name == "response.output_text.delta" and isinstance(data.get("delta"), str):
            self._text.append(data["delta"])
        if isinstance(data.get("response"), dict) and (name in self.TERMINAL or not self._response):
            self._response = data["response"]

    def result(self) -> JSON:
        if self._response.get("output"):
            return self._response
        text = "".join(self._text)  # a stream cut before its terminal event: what was said so far
        part = {"type": "output_text", "text": text, "annotations": []}
        return {**self._response, "output": [{"type": "message", "role": "assistant", "content": [part]}]}
