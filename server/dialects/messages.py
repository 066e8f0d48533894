"""The Anthropic-compatible front door (/v1/messages): native pass-through to Anthropic providers,
translation through OpenAI chat for every other provider."""

from __future__ import annotations

from typing import Any

from server.dialects.base import MAX_OUTPUT_TOKENS, bounded_int, chat_usage, chunk_chars, from_provider, translated
from server.errors import INVALID_REQUEST, GatewayError
from server.metering import Declared
from server.providers.base import Provider
from server.streaming.sse import encode_named
from server.streaming.transcript import ChatTranscript, MessageTranscript
from server.translate import anthropic as tr
from server.translate.counts import add, count
from server.types import Usage


def anthropic_usage(data: Any) -> Usage | None:
    """Anthropic's usage: input excludes cache reads and writes, which are billed as input too. None when
    a count is not a sane integer (the gateway then estimates)."""
    if not isinstance(data, dict):
        return None
    cache_read = count(data.get("cache_read_input_tokens"))
    total_input = add(data.get("input_tokens"), cache_read, data.get("cache_creation_input_tokens"))
    output = count(data.get("output_tokens"))
    if cache_read is None or total_input is None or output is None:
        return None
    return Usage(input_tokens=total_input, output_tokens=output, cached_tokens=cache_read)


def _native(provider: Provider) -> bool:
    return "messages" in provider.dialects


def _content_chars(message: dict[str, Any]) -> int:
    blocks = message.get("content")
    total = 0
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, dict):
            text = block.get("text")
            total += len(text) if isinstance(text, str) else len(str(block.get("input") or ""))
    return total


class NativeMessagesAdapter:
    """Anthropic events passed through as received; message_stop is held until the call is metered.
    message_start carries the input count, message_delta the final cumulative usage."""

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.delivered_chars = 0
        self._usage_data: dict[str, Any] = {}
        self._held: list[bytes] = []
        self.transcript: MessageTranscript | ChatTranscript = MessageTranscript()

    def on_event(self, event: tuple[str, dict[str, Any]]) -> list[bytes]:
        self.transcript.feed(event)  # type: ignore[arg-type]
        name, data = event
        if name == "message_start":
            message = data.get("message")
            self._tap(message.get("usage") if isinstance(message, dict) else None, final=False)
        elif name == "message_delta":
            self._tap(data.get("usage"), final=True)
        elif name == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                piece = delta.get("text") or delta.get("partial_json") or ""
                self.delivered_chars += len(piece) if isinstance(piece, str) else 0
        frame = encode_named(name, data)
        if name == "message_stop":
            self._held.append(frame)
            return []
        return [frame]

    def _tap(self, usage: Any, final: bool) -> None:
        if not isinstance(usage, dict):
            return
        self._usage_data.update({k: v for k, v in usage.items() if v is not None})
        self.reported = anthropic_usage(self._usage_data)
        self.final = final and self.reported is not None

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        return self._held or [encode_named("message_stop", {"type": "message_stop"})]

    def error(self, exc: GatewayError) -> list[bytes]:
        return [encode_named("error", tr.error_body(exc.status, exc.message))]


class TranslatedMessagesAdapter(NativeMessagesAdapter):
    """OpenAI chunks from any provider, translated into Anthropic's event sequence."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self._translator = tr.ChatStreamToMessages(model)
        self.transcript = ChatTranscript()

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:  # type: ignore[override]
        self.transcript.feed(chunk)
        if chunk.get("usage") is not None:
            self.reported = chat_usage(chunk)
            self.final = self.reported is not None
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

    def declare(self, body: dict[str, Any]) -> Declared:
        cap = bounded_int(body.get("max_tokens"), "max_tokens", MAX_OUTPUT_TOKENS)
        if cap is None:
            raise INVALID_REQUEST(detail="max_tokens: Field required", param="max_tokens")
        return Declared(output_cap=cap)

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        body["max_tokens"] = cap

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        return _content_chars(answer)

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        if _native(provider):
            result = await provider.messages(model, body)
            return result, anthropic_usage(result.get("usage"))
        chat = translated(tr.messages_request_to_chat, body)
        answer = await provider.chat(model, {**chat, "stream": False})
        return from_provider(tr.chat_to_messages_response, answer, body.get("model") or model), chat_usage(answer)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        if _native(provider):
            return await provider.messages_stream(model, body)
        return await provider.chat_stream(model, translated(tr.messages_request_to_chat, body))

    def adapter(self, body: dict[str, Any], provider: Provider) -> NativeMessagesAdapter:
        if _native(provider):
            return NativeMessagesAdapter()
        return TranslatedMessagesAdapter(str(body.get("model") or ""))

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        """Anthropic's usage object has no cost field (x-credits-used carries it); an estimated usage replaces it."""
        if usage.estimated:
            answer["usage"] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


MESSAGES = MessagesDialect()
