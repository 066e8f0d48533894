"""The built-in `mock` provider: deterministic, no network, so a fresh install answers at once.

Chat replies echo the last user message; with tools (and tool_choice not "none") it calls the first
tool. Embeddings are derived from SHA-256 of each input, so equal inputs give equal vectors. Realtime
sessions talk to a deterministic peer in process (server/providers/mock_realtime.py).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from server.errors import UpstreamError
from server.metering import tokens_in
from server.providers.base import ProviderBase
from server.providers.mock_media import MockMedia
from server.providers.mock_realtime import MockRealtimePeer
from server.providers.realtime import RealtimeOptions
from server.settings import ProviderSettings

DEFAULT_DIMENSIONS = 16


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _message_chars(messages: Any) -> int:
    """Characters of text in chat messages: the mock counts tokens from them."""
    total = 0
    if not isinstance(messages, list):
        return 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
    return total


def _reply(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The reply text, or a tool call when tools are offered."""
    tools = body.get("tools")
    if tools and body.get("tool_choice") != "none":
        function = tools[0].get("function") if isinstance(tools[0], dict) else None
        function = function if isinstance(function, dict) else {}
        name = str(function.get("name", "tool"))
        call_id = "call_" + hashlib.sha256(name.encode()).hexdigest()[:12]
        return None, {"id": call_id, "type": "function", "function": {"name": name, "arguments": '{"input": "mock"}'}}
    text = _last_user_text(body.get("messages") or [])
    return f"Mock reply: {text[:200]}".strip(), None


def _usage(body: dict[str, Any], text: str | None) -> dict[str, Any]:
    prompt = tokens_in(_message_chars(body.get("messages"))) + 1
    completion = len(text.split()) if text else 5
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _vector(item: Any, dimensions: int) -> list[float]:
    seed = hashlib.sha256(repr(item).encode()).digest()
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        out.extend((b / 127.5) - 1.0 for b in block)
        counter += 1
    return out[:dimensions]


class MockProvider(MockMedia, ProviderBase, kind="mock"):
    """Serves OpenAI shapes only (chat, embeddings and every media endpoint: server/providers/mock_media.py);
    the other front doors translate through chat."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.name = settings.name
        self.job_seconds = settings.job_seconds

    async def aclose(self) -> None:
        return None

    async def chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        text, tool_call = _reply(body)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if tool_call:
            message["tool_calls"] = [tool_call]
        return {
            "id": "chatcmpl-mock" + hashlib.sha256(repr(body.get("messages")).encode()).hexdigest()[:16],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if tool_call else "stop",
                }
            ],
            "usage": _usage(body, text),
        }

    async def realtime(self, model: str, options: RealtimeOptions) -> MockRealtimePeer:
        return MockRealtimePeer(model)

    async def chat_stream(self, model: str, body: dict[str, Any]) -> _MockStream:
        return _MockStream(await self.chat(model, body))

    async def embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input")
        items = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
        if not isinstance(dimensions, int) or dimensions < 1 or dimensions > 4096:
            raise UpstreamError(
                400, "dimensions must be an integer from 1 to 4096", retryable=False, upstream_status=400
            )
        data = []
        tokens = 0
        for index, item in enumerate(items):
            vector = _vector(item, dimensions)
            tokens += len(item) if isinstance(item, list) else tokens_in(len(str(item))) + 1
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


class _MockStream:
    """Replays a completed mock reply as OpenAI chunks, word by word, then the usage chunk."""

    def __init__(self, completion: dict[str, Any]) -> None:
        self._completion = completion

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        done = self._completion
        base = {"id": done["id"], "object": "chat.completion.chunk", "created": done["created"], "model": done["model"]}
        choice = done["choices"][0]
        message = choice["message"]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": ""})
        for call in message.get("tool_calls") or []:
            head = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            yield chunk({"tool_calls": [head]})
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]})
        words = (message.get("content") or "").split(" ")
        for i, word in enumerate(words if message.get("content") else []):
            yield chunk({"content": word + (" " if i < len(words) - 1 else "")})
        yield chunk({}, choice["finish_reason"])
        yield {**base, "choices": [], "usage": done["usage"]}

    async def aclose(self) -> None:
        return None
