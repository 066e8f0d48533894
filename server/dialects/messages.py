"""The Anthropic-compatible front door (/v1/messages): native pass-through to Anthropic providers,
translation through OpenAI chat for every other provider."""

from __future__ import annotations

from typing import Any

from server.dialects.base import chat_usage, chunk_chars, provisional, translated
from server.errors import GatewayError
from server.providers.base import Provider
from server.streaming.sse import encode_named
from server.translate import anthropic as tr
from server.types import Usage


def anthropic_usage(data: dict[str, Any] | None) -> Usage | None:
    """Anthropic's usage: input excludes cache reads and writes, which are billed as input too."""
    if not isinstance(data, dict):
        return None
    cache_read = int(data.get("cache_read_input_tokens") or 0)
    cache_write = int(data.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(data.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=int(data.get("output_tokens") or 0),
        cached_tokens=cache_read,
    )


def _native(provider: Provider) -> bool:
    return getattr(provider, "native_format", None) == "anthropic"


class NativeMessagesAdapter:
    """Anthropic events passed through as received; message_stop is held until the call is metered."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.delivered_chars = 0
        self._usage_data: dict[str, Any] = {}
        self._final_usage = False  # message_delta carries the final cumulative usage
        self._held: list[bytes] = []

    def on_event(self, event: tuple[str, dict[str, Any]]) -> list[bytes]:
        name, data = event
        if name == "message_start":
            self._usage_data.update((data.get("message") or {}).get("usage") or {})
        elif name == "message_delta":
            self._usage_data.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            self._final_usage = self._final_usage or bool(data.get("usage"))
        elif name == "content_block_delta":
            delta = data.get("delta") or {}
            self.delivered_chars += len(delta.get("text") or delta.get("partial_json") or "")
        if self._usage_data:
            reported = anthropic_usage(self._usage_data)
            self.usage = reported if self._final_usage else provisional(reported, self.delivered_chars)
        frame = encode_named(name, data)
        if name == "message_stop":
            self._held.append(frame)
            return []
        return [frame]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        return self._held or [encode_named("message_stop", {"type": "message_stop"})]

    def error(self, exc: GatewayError) -> list[bytes]:
        return [encode_named("error", tr.error_body(exc.status, exc.message))]


class TranslatedMessagesAdapter(NativeMessagesAdapter):
    """OpenAI chunks from any provider, translated into Anthropic's event sequence."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self._translator = tr.ChatStreamToMessages(model)

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:  # type: ignore[override]
        if chunk.get("usage"):
            self.usage = chat_usage(chunk)
        self.delivered_chars += chunk_chars(chunk)
        return self._frames(self._translator.feed(chunk))

    def _frames(self, events: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
        frames = []
        for name, data in events:
            frame = encode_named(name, data)
            if name == "message_stop":
                self._held.append(frame)
            else:
                frames.append(frame)
        return frames

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        return self._frames(self._translator.finish()) + self._held


class MessagesDialect:
    name = "messages"
    capability = "chat"
    endpoint_class = "chat"

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        value = body.get("max_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        if _native(provider):
            result = await provider.messages(model, body)  # type: ignore[attr-defined]
            return result, anthropic_usage(result.get("usage"))
        chat = translated(tr.messages_request_to_chat, body)
        answer = await provider.chat(model, {**chat, "stream": False})
        return translated(tr.chat_to_messages_response, answer, body.get("model") or model), chat_usage(answer)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        if _native(provider):
            return await provider.messages_stream(model, body)  # type: ignore[attr-defined]
        return await provider.chat_stream(model, translated(tr.messages_request_to_chat, body))

    def adapter(self, body: dict[str, Any], provider: Provider) -> NativeMessagesAdapter:
        if _native(provider):
            return NativeMessagesAdapter()
        return TranslatedMessagesAdapter(str(body.get("model") or ""))

    def add_cost(self, body: dict[str, Any], cost: float) -> None:
        return None  # Anthropic's usage object has no cost field; x-credits-used carries it


MESSAGES = MessagesDialect()
