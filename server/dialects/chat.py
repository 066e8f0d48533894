"""OpenAI chat completions and embeddings: every provider serves these shapes directly."""

from __future__ import annotations

from typing import Any

from server.dialects.base import chat_usage, chunk_chars
from server.errors import GatewayError
from server.metering import usage_from_openai
from server.providers.base import Provider
from server.streaming.sse import DONE, encode
from server.types import Usage


def _cap(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class ChatAdapter:
    """Usage is tapped from the upstream usage chunk (always requested) and passed on only if the
    client asked (stream_options.include_usage), after metering, with `usage.cost` added."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.delivered_chars = 0
        self._usage_chunk: dict[str, Any] | None = None

    def on_event(self, chunk: dict[str, Any]) -> list[bytes]:
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
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
            chunk = dict(self._usage_chunk or {"object": "chat.completion.chunk"})
            chunk["choices"] = []
            data = dict(chunk.get("usage") or {})
            if not data:
                data = {
                    "prompt_tokens": usage.input_tokens,
                    "completion_tokens": usage.output_tokens,
                    "total_tokens": usage.total_tokens,
                }
            data["cost"] = charge_micro / 1_000_000
            chunk["usage"] = data
            frames.append(encode(chunk))
        frames.append(DONE)
        return frames

    def error(self, exc: GatewayError) -> list[bytes]:
        return [encode(exc.openai_body())]


class ChatDialect:
    name = "chat"
    capability = "chat"
    endpoint_class = "chat"

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        cap = _cap(body, "max_completion_tokens", "max_tokens")
        n = _cap(body, "n") or 1
        return cap * n if cap else None

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        result = await provider.chat(model, body)
        return result, chat_usage(result)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        return await provider.chat_stream(model, body)

    def adapter(self, body: dict[str, Any], provider: Provider) -> ChatAdapter:
        options = body.get("stream_options")
        return ChatAdapter(bool(isinstance(options, dict) and options.get("include_usage")))

    def add_cost(self, body: dict[str, Any], cost: float) -> None:
        body.setdefault("usage", {})["cost"] = cost


class EmbeddingsDialect(ChatDialect):
    name = "embeddings"
    capability = "embeddings"
    endpoint_class = "embeddings"

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        return 0

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        result = await provider.embeddings(model, body)
        return result, chat_usage(result)


CHAT = ChatDialect()
EMBEDDINGS = EmbeddingsDialect()
