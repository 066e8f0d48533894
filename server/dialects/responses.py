"""The Responses front door (/v1/responses): passed through to openai-kind providers, translated to
and from chat for the others (streaming events included)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from server.dialects.base import chat_usage, chunk_chars, translated
from server.errors import GatewayError
from server.metering import usage_from_openai
from server.providers.base import Provider
from server.streaming.sse import encode_named
from server.translate import responses as tr
from server.types import Usage

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _native(provider: Provider) -> bool:
    return getattr(provider, "native_format", None) == "openai"


def _new_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


class NativeResponsesAdapter:
    """Events passed through; the terminal one is held until metered, and gets `usage.cost`."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.delivered_chars = 0
        self._held: tuple[str, dict[str, Any]] | None = None
        self._sequence = 0

    def on_event(self, event: tuple[str, dict[str, Any]]) -> list[bytes]:
        name, data = event
        self._sequence = max(self._sequence, int(data.get("sequence_number") or 0))
        if name == "response.output_text.delta":
            self.delivered_chars += len(data.get("delta") or "")
        usage = tr.responses_stream_usage(data)
        if usage is not None:
            self.usage = usage_from_openai(usage)
        if name in TERMINAL:
            self._held = (name, data)
            return []
        return [encode_named(name, data)]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        if self._held is None:
            return []
        name, data = self._held
        response_usage = (data.get("response") or {}).get("usage")
        if isinstance(response_usage, dict):
            response_usage["cost"] = charge_micro / 1_000_000
        return [encode_named(name, data)]

    def error(self, exc: GatewayError) -> list[bytes]:
        body = {"type": "error", "code": exc.code, "message": exc.message, "param": None}
        return [encode_named("error", {**body, "sequence_number": self._sequence + 1})]


class TranslatedResponsesAdapter:
    def __init__(self, request: dict[str, Any]) -> None:
        self.usage: Usage | None = None
        self.delivered_chars = 0
        self._translator = tr.ChatStreamToResponses(request, _new_id(), int(time.time()))

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:
        if chunk.get("usage"):
            self.usage = chat_usage(chunk)
        self.delivered_chars += chunk_chars(chunk)
        return [encode_named(name, data) for name, data in self._translator.feed(chunk)]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        events = self._translator.finish(int(time.time()))
        for name, data in events:
            if name in TERMINAL and isinstance((data.get("response") or {}).get("usage"), dict):
                data["response"]["usage"]["cost"] = charge_micro / 1_000_000
        return [encode_named(name, data) for name, data in events]

    def error(self, exc: GatewayError) -> list[bytes]:
        return [encode_named(name, data) for name, data in self._translator.fail(exc.message)]


class ResponsesDialect:
    name = "responses"
    capability = "chat"
    endpoint_class = "chat"

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        value = body.get("max_output_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        if _native(provider):
            result = await provider.responses(model, body)  # type: ignore[attr-defined]
            usage = result.get("usage")
            return result, usage_from_openai(tr.response_to_chat_usage(usage)) if isinstance(usage, dict) else None
        chat = translated(tr.responses_to_chat, body)
        answer = await provider.chat(model, {**chat, "stream": False})
        response = translated(tr.chat_to_response, answer, body, _new_id(), int(time.time()))
        return response, chat_usage(answer)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        if _native(provider):
            return await provider.responses_stream(model, body)  # type: ignore[attr-defined]
        return await provider.chat_stream(model, translated(tr.responses_to_chat, body))

    def adapter(self, body: dict[str, Any], provider: Provider) -> NativeResponsesAdapter | TranslatedResponsesAdapter:
        return NativeResponsesAdapter() if _native(provider) else TranslatedResponsesAdapter(body)

    def add_cost(self, body: dict[str, Any], cost: float) -> None:
        if isinstance(body.get("usage"), dict):
            body["usage"]["cost"] = cost


RESPONSES = ResponsesDialect()
