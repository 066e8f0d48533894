"""The Dialect protocol and the pieces every dialect shares."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from server.errors import GatewayError
from server.metering import estimate_tokens, usage_from_openai
from server.providers.base import Provider
from server.streaming.relay import StreamAdapter
from server.translate.errors import TranslationError
from server.types import Usage


class Dialect(Protocol):
    name: str  # the request log's endpoint: chat, embeddings, responses, messages, gemini
    capability: str  # what the public model must offer: chat or embeddings
    endpoint_class: str  # for key scopes and plan limits

    def max_output_tokens(self, body: dict[str, Any]) -> int | None: ...

    async def unary(
        self, provider: Provider, model: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage | None]: ...

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any: ...

    def adapter(self, body: dict[str, Any], provider: Provider) -> StreamAdapter: ...

    def add_cost(self, body: dict[str, Any], cost: float) -> None: ...


def translated(fn: Any, *args: Any) -> Any:
    """Run a front-door translator; its refusal is the client's 400 (or the status it names)."""
    try:
        return fn(*args)
    except TranslationError as exc:
        raise GatewayError(exc.status, str(exc), code=exc.code, param=exc.param) from None


def chat_usage(body: dict[str, Any]) -> Usage | None:
    return usage_from_openai(body.get("usage"))


def chunk_chars(chunk: dict[str, Any]) -> int:
    """Characters of text and tool arguments delivered in an OpenAI chunk (for usage estimates)."""
    total = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            total += len(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                total += len(arguments)
    return total


def provisional(reported: Usage | None, delivered_chars: int) -> Usage | None:
    """Usage of a native stream whose final count has not arrived (yet): the provider's input count, and
    the larger of its running output count and an estimate from what was delivered, marked estimated.
    Anthropic's message_start says output_tokens 1 and Gemini's early fragments give none, so a stream
    that breaks before its final usage would otherwise be billed as if almost nothing was delivered."""
    if reported is None:
        return None
    return replace(
        reported, output_tokens=max(reported.output_tokens, estimate_tokens(delivered_chars)), estimated=True
    )
