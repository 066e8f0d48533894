"""The Gemini-compatible front door (models/{model}:generateContent and :streamGenerateContent):
native pass-through to Gemini providers, translation through OpenAI chat for every other provider."""

from __future__ import annotations

from typing import Any

import orjson

from server.dialects.base import chat_usage, chunk_chars, provisional, translated
from server.errors import GatewayError
from server.metering import usage_from_openai
from server.providers.base import Provider
from server.translate import gemini as tr
from server.types import Usage


def gemini_usage(meta: dict[str, Any] | None) -> Usage | None:
    if not isinstance(meta, dict) or not meta:
        return None
    return usage_from_openai(tr.chat_usage(meta))


def _native(provider: Provider) -> bool:
    return getattr(provider, "native_format", None) == "gemini"


def _frame(fragment: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(fragment) + b"\r\n\r\n"


def _final(fragment: dict[str, Any]) -> bool:
    """The fragment that ends a stream: one with a finishReason, or a blocked prompt's feedback."""
    if any(c.get("finishReason") for c in fragment.get("candidates") or () if isinstance(c, dict)):
        return True
    feedback = fragment.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def _text_chars(fragment: dict[str, Any]) -> int:
    total = 0
    for candidate in fragment.get("candidates") or ():
        for part in ((candidate or {}).get("content") or {}).get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
    return total


class NativeGeminiAdapter:
    """Fragments passed through as received; the one carrying finishReason is held until metered.
    Usage is final only from that fragment; before it, output is estimated from what was delivered."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.delivered_chars = 0
        self._reported: Usage | None = None
        self._ended = False  # a fragment with finishReason arrived: its usage is the final count
        self._held: list[bytes] = []

    def _route(self, fragment: dict[str, Any]) -> list[bytes]:
        frame = _frame(fragment)
        if _final(fragment) or self._held:
            self._held.append(frame)
            return []
        return [frame]

    def on_event(self, fragment: dict[str, Any]) -> list[bytes]:
        self._reported = gemini_usage(fragment.get("usageMetadata")) or self._reported
        self.delivered_chars += _text_chars(fragment)
        self._ended = self._ended or _final(fragment)
        self.usage = self._reported if self._ended else provisional(self._reported, self.delivered_chars)
        return self._route(fragment)

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        return self._held

    def error(self, exc: GatewayError) -> list[bytes]:
        return [_frame(tr.error_body(exc.status, exc.message))]


class TranslatedGeminiAdapter(NativeGeminiAdapter):
    def __init__(self, model: str) -> None:
        super().__init__()
        self._translator = tr.ChatStreamToGemini(model)

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:  # type: ignore[override]
        if chunk.get("usage"):
            self.usage = chat_usage(chunk)
        self.delivered_chars += chunk_chars(chunk)
        return [frame for fragment in self._translator.feed(chunk) for frame in self._route(fragment)]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        for fragment in self._translator.finish():
            self._held.append(_frame(fragment))
        return self._held


class GeminiDialect:
    name = "gemini"
    capability = "chat"
    endpoint_class = "chat"

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        config = body.get("generationConfig") or body.get("generation_config") or {}
        value = config.get("maxOutputTokens") or config.get("max_output_tokens") if isinstance(config, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        public = str(body.get("model") or model)
        request = {k: v for k, v in body.items() if k != "model"}
        if _native(provider):
            result = await provider.generate_content(model, request)  # type: ignore[attr-defined]
            return result, gemini_usage(result.get("usageMetadata"))
        chat = translated(tr.generate_content_request_to_chat, request, public)
        answer = await provider.chat(model, {**chat, "stream": False})
        return translated(tr.chat_to_generate_content_response, answer, public), chat_usage(answer)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        request = {k: v for k, v in body.items() if k not in ("model", "stream")}
        if _native(provider):
            return await provider.stream_generate_content(model, request)  # type: ignore[attr-defined]
        chat = translated(tr.generate_content_request_to_chat, request, str(body.get("model") or model))
        return await provider.chat_stream(model, chat)

    def adapter(self, body: dict[str, Any], provider: Provider) -> NativeGeminiAdapter:
        if _native(provider):
            return NativeGeminiAdapter()
        return TranslatedGeminiAdapter(str(body.get("model") or ""))

    def add_cost(self, body: dict[str, Any], cost: float) -> None:
        return None  # Gemini's usageMetadata has no cost field; x-credits-used carries it


GEMINI = GeminiDialect()
