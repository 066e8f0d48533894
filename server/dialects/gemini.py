"""The Gemini-compatible front door (models/{model}:generateContent and :streamGenerateContent):
native pass-through to Gemini providers, translation through OpenAI chat for every other provider."""

from __future__ import annotations

from typing import Any

import orjson

from server.dialects.base import (
    MAX_OUTPUT_TOKENS,
    answer_chars,
    bounded_int,
    chat_usage,
    chunk_chars,
    from_provider,
    object_field,
    translated,
)
from server.errors import GatewayError
from server.metering import Declared, openai_usage
from server.providers.base import Provider
from server.streaming.transcript import ChatTranscript, GeminiTranscript
from server.translate import gemini as tr
from server.types import Usage

MAX_CANDIDATES = 8  # Gemini's own limit on candidateCount
CONFIG_FIELDS = ("generationConfig", "generation_config")


def gemini_usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict) or not meta:
        return None
    return openai_usage(tr.chat_usage(meta))


def _native(provider: Provider) -> bool:
    return "gemini" in provider.dialects


def _frame(fragment: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(fragment) + b"\r\n\r\n"


def _final(fragment: dict[str, Any]) -> bool:
    """The fragment that ends a stream: one with a finishReason, or a blocked prompt's feedback."""
    candidates = fragment.get("candidates")
    if isinstance(candidates, list) and any(isinstance(c, dict) and c.get("finishReason") for c in candidates):
        return True
    feedback = fragment.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def _text_chars(fragment: dict[str, Any]) -> int:
    total = 0
    candidates = fragment.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else ():
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
    return total


class NativeGeminiAdapter:
    """Fragments passed through as received; the one carrying finishReason is held until metered.
    Usage is final only from that fragment; before it, each fragment's usageMetadata is a running count."""

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.delivered_chars = 0
        self._held: list[bytes] = []
        self.transcript: GeminiTranscript | ChatTranscript = GeminiTranscript()

    def _route(self, fragment: dict[str, Any]) -> list[bytes]:
        frame = _frame(fragment)
        if _final(fragment) or self._held:
            self._held.append(frame)
            return []
        return [frame]

    def on_event(self, fragment: dict[str, Any]) -> list[bytes]:
        self.transcript.feed(fragment)
        self.reported = gemini_usage(fragment.get("usageMetadata")) or self.reported
        self.delivered_chars += _text_chars(fragment)
        self.final = self.final or (_final(fragment) and self.reported is not None)
        return self._route(fragment)

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        return self._held

    def error(self, exc: GatewayError) -> list[bytes]:
        return [_frame(tr.error_body(exc.status, exc.message))]


class TranslatedGeminiAdapter(NativeGeminiAdapter):
    def __init__(self, model: str) -> None:
        super().__init__()
        self._translator = tr.ChatStreamToGemini(model)
        self.transcript = ChatTranscript()

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:  # type: ignore[override]
        self.transcript.feed(chunk)
        if chunk.get("usage") is not None:
            self.reported = chat_usage(chunk)
            self.final = self.reported is not None
        self.delivered_chars += chunk_chars(chunk)
        return [frame for fragment in self._translator.feed(chunk) for frame in self._route(fragment)]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        for fragment in self._translator.finish():
            self._held.append(_frame(fragment))
        return self._held


class GeminiDialect:
    name = "gemini"
    capability = "chat"

    def declare(self, body: dict[str, Any]) -> Declared:
        name, config = object_field(body, *CONFIG_FIELDS)
        prefix = f"{name or CONFIG_FIELDS[0]}."
        cap = candidates = None
        for key in ("maxOutputTokens", "max_output_tokens"):
            cap = cap or bounded_int(config.get(key), prefix + key, MAX_OUTPUT_TOKENS)
        for key in ("candidateCount", "candidate_count"):
            candidates = candidates or bounded_int(config.get(key), prefix + key, MAX_CANDIDATES)
        return Declared(output_cap=cap, choices=candidates or 1)

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        name, config = object_field(body, *CONFIG_FIELDS)
        key = "max_output_tokens" if name == "generation_config" else "maxOutputTokens"
        body[name or CONFIG_FIELDS[0]] = {**config, key: cap}

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        return _text_chars(answer) if "candidates" in answer else answer_chars(answer)

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        public = str(body.get("model") or model)
        request = {k: v for k, v in body.items() if k != "model"}
        if _native(provider):
            result = await provider.generate_content(model, request)
            return result, gemini_usage(result.get("usageMetadata"))
        chat = translated(tr.generate_content_request_to_chat, request, public)
        answer = await provider.chat(model, {**chat, "stream": False})
        return from_provider(tr.chat_to_generate_content_response, answer, public), chat_usage(answer)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        request = {k: v for k, v in body.items() if k not in ("model", "stream")}
        if _native(provider):
            return await provider.stream_generate_content(model, request)
        chat = translated(tr.generate_content_request_to_chat, request, str(body.get("model") or model))
        return await provider.chat_stream(model, chat)

    def adapter(self, body: dict[str, Any], provider: Provider) -> NativeGeminiAdapter:
        if _native(provider):
            return NativeGeminiAdapter()
        return TranslatedGeminiAdapter(str(body.get("model") or ""))

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        """Gemini's usageMetadata has no cost field (x-credits-used carries it); an estimated usage replaces it."""
        if usage.estimated:
            answer["usageMetadata"] = {
                "promptTokenCount": usage.input_tokens,
                "candidatesTokenCount": usage.output_tokens,
                "totalTokenCount": usage.total_tokens,
            }


GEMINI = GeminiDialect()
