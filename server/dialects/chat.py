"""OpenAI chat completions and embeddings: every provider serves these shapes directly."""

from __future__ import annotations

from typing import Any

from server.dialects.base import (
    MAX_OUTPUT_TOKENS,
    answer_chars,
    bounded_int,
    chat_usage,
    chunk_chars,
    openai_usage_object,
)
from server.errors import GatewayError
from server.metering import Declared, openai_usage
from server.money import credits_number
from server.providers.base import Provider
from server.streaming.sse import DONE, encode
from server.streaming.transcript import ChatTranscript
from server.types import Usage

MAX_CHOICES = 128  # OpenAI's own limit on `n`
CAP_FIELDS = ("max_completion_tokens", "max_tokens")


class ChatAdapter:
    """Usage is tapped from the upstream usage chunk (always requested) and passed on only if the
    client asked (stream_options.include_usage), after metering, with `usage.cost` added."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.reported: Usage | None = None
        self.final = False
        self.delivered_chars = 0
        self._usage_chunk: dict[str, Any] | None = None
        self._identity: dict[str, Any] = {"object": "chat.completion.chunk"}
        self.transcript = ChatTranscript()

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:
        self.transcript.feed(chunk)
        if len(self._identity) == 1:  # the stream's id, created and model, for a usage chunk we build ourselves
            self._identity |= {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        if chunk.get("usage") is not None:
            self.reported = openai_usage(chunk["usage"])
            self.final = self.reported is not None
            if not chunk.get("choices"):
                self._usage_chunk = chunk
                return []
        if not self.include_usage:
            chunk.pop("usage", None)
        self.delivered_chars += chunk_chars(chunk)
        return [encode(chunk)]

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]:
        frames = []
        if self.include_usage:
            chunk = dict(self._usage_chunk or self._identity)
            chunk["choices"] = []
            upstream = chunk.get("usage")
            data = dict(upstream) if isinstance(upstream, dict) and not usage.estimated else openai_usage_object(usage)
            data["cost"] = credits_number(charge_micro)
            chunk["usage"] = data
            frames.append(encode(chunk))
        frames.append(DONE)
        return frames

    def error(self, exc: GatewayError) -> list[bytes]:
        return [encode(exc.openai_body())]


class ChatDialect:
    name = "chat"
    capability = "chat"

    def declare(self, body: dict[str, Any]) -> Declared:
        caps = [bounded_int(body.get(name), name, MAX_OUTPUT_TOKENS) for name in CAP_FIELDS]
        given = [cap for cap in caps if cap is not None]
        choices = bounded_int(body.get("n"), "n", MAX_CHOICES) or 1
        return Declared(output_cap=min(given) if given else None, choices=choices)

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        body["max_completion_tokens"] = cap

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        return answer_chars(answer)

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        result = await provider.chat(model, body)
        return result, chat_usage(result)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        return await provider.chat_stream(model, body)

    def adapter(self, body: dict[str, Any], provider: Provider) -> ChatAdapter:
        options = body.get("stream_options")
        return ChatAdapter(bool(isinstance(options, dict) and options.get("include_usage")))

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        if usage.estimated or not isinstance(answer.get("usage"), dict):
            answer["usage"] = openai_usage_object(usage)
        answer["usage"]["cost"] = credits_number(charge_micro)


class EmbeddingsDialect(ChatDialect):
    name = "embeddings"
    capability = "embeddings"

    def declare(self, body: dict[str, Any]) -> Declared:
        return Declared(output_cap=0)

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        return None  # embeddings produce no output tokens

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        return 0

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        result = await provider.embeddings(model, body)
        return result, chat_usage(result)


CHAT = ChatDialect()
EMBEDDINGS = EmbeddingsDialect()
