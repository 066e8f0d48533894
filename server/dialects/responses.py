"""The Responses front door (/v1/responses): passed through to openai-kind providers, translated to
and from chat for the others (streaming events included)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from server.dialects.base import MAX_OUTPUT_TOKENS, bounded_int, chat_usage, chunk_chars, from_provider, translated
from server.errors import GatewayError
from server.metering import Declared, openai_usage
from server.money import credits_number
from server.providers.base import Provider
from server.streaming.sse import encode_named
from server.streaming.transcript import ChatTranscript, ResponseTranscript
from server.translate import responses as tr
from server.types import Usage

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _native(provider: Provider) -> bool:
    return "responses" in provider.dialects


def _new_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def _response_usage(response: Any) -> Usage | None:
    return openai_usage(response.get("usage")) if isinstance(response, dict) else None


def _output_chars(response: dict[str, Any]) -> int:
    """Characters of text and function-call arguments in a Response's output items."""
    total = 0
    output = response.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        arguments = item.get("arguments")
        total += len(arguments) if isinstance(arguments, str) else 0
        content = item.get("content")
        for part in content if isinstance(content, list) else ():
            text = part.get("text") if isinstance(part, dict) else None
            total += len(text) if isinstance(text, str) else 0
    return total


def _with_usage(response: Any, usage: Usage, charge_micro: int) -> None:
    """Our metered usage (when estimated) and its cost on a Response object."""
    if not isinstance(response, dict):
        return
    if usage.estimated or not isinstance(response.get("usage"), dict):
        response["usage"] = {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens,
        }
    response["usage"]["cost"] = credits_number(charge_micro)


class NativeResponsesAdapter:
    """Events passed through; the terminal one is held until metered, and gets `usage.cost`."""

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.delivered_chars = 0
        self._held: tuple[str, dict[str, Any]] | None = None
        self._sequence = 0
        self.transcript = ResponseTranscript()

    def on_event(self, event: tuple[str, dict[str, Any]]) -> list[bytes]:
        self.transcript.feed(event)
        name, data = event
        sequence = data.get("sequence_number")
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            self._sequence = max(self._sequence, sequence)
        if name == "response.output_text.delta":
            delta = data.get("delta")
            self.delivered_chars += len(delta) if isinstance(delta, str) else 0
        if name in TERMINAL:
            self.reported = _response_usage(data.get("response"))
            self.final = self.reported is not None
            self._held = (name, data)
            return []
        return [encode_named(name, data)]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        if self._held is None:
            return []
        name, data = self._held
        _with_usage(data.get("response"), usage, charge_micro)
        return [encode_named(name, data)]

    def error(self, exc: GatewayError) -> list[bytes]:
        body = {"type": "error", "code": exc.code, "message": exc.message, "param": None}
        return [encode_named("error", {**body, "sequence_number": self._sequence + 1})]


class TranslatedResponsesAdapter:
    def __init__(self, request: dict[str, Any]) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.delivered_chars = 0
        self._translator = tr.ChatStreamToResponses(request, _new_id(), int(time.time()))
        self.transcript = ChatTranscript()

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:
        self.transcript.feed(chunk)
        if chunk.get("usage") is not None:
            self.reported = chat_usage(chunk)
            self.final = self.reported is not None
        self.delivered_chars += chunk_chars(chunk)
        return [encode_named(name, data) for name, data in self._translator.feed(chunk)]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        events = self._translator.finish(int(time.time()))
        for name, data in events:
            if name in TERMINAL:
                _with_usage(data.get("response"), usage, charge_micro)
        return [encode_named(name, data) for name, data in events]

    def error(self, exc: GatewayError) -> list[bytes]:
        return [encode_named(name, data) for name, data in self._translator.fail(exc.message)]


class ResponsesDialect:
    name = "responses"
    capability = "chat"

    def declare(self, body: dict[str, Any]) -> Declared:
        return Declared(output_cap=bounded_int(body.get("max_output_tokens"), "max_output_tokens", MAX_OUTPUT_TOKENS))

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        body["max_output_tokens"] = cap

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        return _output_chars(answer)

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        if _native(provider):
            result = await provider.responses(model, body)
            return result, _response_usage(result)
        chat = translated(tr.responses_to_chat, body)
        answer = await provider.chat(model, {**chat, "stream": False})
        response = from_provider(tr.chat_to_response, answer, body, _new_id(), int(time.time()))
        return response, chat_usage(answer)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        if _native(provider):
            return await provider.responses_stream(model, body)
        return await provider.chat_stream(model, translated(tr.responses_to_chat, body))

    def adapter(self, body: dict[str, Any], provider: Provider) -> NativeResponsesAdapter | TranslatedResponsesAdapter:
        return NativeResponsesAdapter() if _native(provider) else TranslatedResponsesAdapter(body)

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        _with_usage(answer, usage, charge_micro)


RESPONSES = ResponsesDialect()
