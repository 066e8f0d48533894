"""The Dialect protocol and the pieces every dialect shares.

A dialect is how a client speaks to the gateway (OpenAI chat, embeddings or Responses, Anthropic
messages, Gemini generateContent). It validates what its requests declare about their size, gives the
upstream the reserved output cap when the client set none, calls a provider natively or through
translation, and frames stream events for the client.
"""

from __future__ import annotations

from typing import Any, Protocol

from server.errors import INVALID_REQUEST, INVALID_TYPE, INVALID_VALUE, UpstreamError, from_translation
from server.metering import Declared, openai_usage
from server.providers.base import Provider
from server.streaming.relay import StreamAdapter
from server.translate.errors import TranslationError
from server.types import Usage

MAX_OUTPUT_TOKENS = 10_000_000  # far above any model's limit; larger is a malformed request


class Dialect(Protocol):
    name: str  # the request log's `endpoint`: chat, embeddings, responses, messages, gemini
    capability: str  # what the public model must serve: chat or embeddings

    def declare(self, body: dict[str, Any]) -> Declared:
        """The request's output cap and choices, validated; a malformed value is a 400 naming the field."""
        ...

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        """Give the upstream the reserved cap (the request declared none), so the reservation is a real bound."""
        ...

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        """Characters of output in a whole answer: the base of an estimate when the usage is missing."""
        ...

    async def unary(
        self, provider: Provider, model: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage | None]: ...

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any: ...

    def adapter(self, body: dict[str, Any], provider: Provider) -> StreamAdapter: ...

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        """Put the metered usage (when it was estimated) and its cost into a whole answer, in this dialect's shape."""
        ...


def translated(fn: Any, *args: Any) -> Any:
    """Run a front-door translator over the client's body; a body it cannot read is the client's 400."""
    try:
        return fn(*args)
    except TranslationError as exc:
        raise from_translation(exc) from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        raise INVALID_REQUEST(detail="The request body has a field of the wrong shape.") from None


def from_provider(fn: Any, *args: Any) -> Any:
    """Run a translator over a provider's answer; an answer it cannot read is the provider's fault (502)."""
    try:
        return fn(*args)
    except TranslationError as exc:
        raise from_translation(exc) from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise UpstreamError(
            502,
            f"the provider's answer could not be read ({type(exc).__name__})",
            retryable=True,
            upstream_status="invalid_json",
        ) from None


def bounded_int(value: Any, param: str, upper: int) -> int | None:
    """An optional integer from 1 to `upper`; anything else present is a 400 naming `param`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise INVALID_VALUE(field=param, what=f"an integer from 1 to {upper}")
    return value


def object_field(body: dict[str, Any], *names: str) -> tuple[str | None, dict[str, Any]]:
    """The first of `names` present in `body` (with its value, which must be an object), else (None, {})."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise INVALID_TYPE(field=name, what="an object")
        return name, value
    return None, {}


def chat_usage(body: dict[str, Any]) -> Usage | None:
    return openai_usage(body.get("usage"))


def chunk_chars(chunk: dict[str, Any]) -> int:
    """Characters of text and tool arguments delivered in an OpenAI chunk (the base of usage estimates)."""
    total = 0
    for choice in _items(chunk.get("choices")):
        delta = choice.get("delta")
        total += _message_chars(delta) if isinstance(delta, dict) else 0
    return total


def answer_chars(answer: dict[str, Any]) -> int:
    """Characters of text and tool arguments in an OpenAI chat completion."""
    total = 0
    for choice in _items(answer.get("choices")):
        message = choice.get("message")
        total += _message_chars(message) if isinstance(message, dict) else 0
    return total


def _message_chars(message: dict[str, Any]) -> int:
    content = message.get("content")
    total = len(content) if isinstance(content, str) else 0
    for call in _items(message.get("tool_calls")):
        function = call.get("function")
        arguments = function.get("arguments") if isinstance(function, dict) else None
        total += len(arguments) if isinstance(arguments, str) else 0
    return total


def _items(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def openai_usage_object(usage: Usage) -> dict[str, Any]:
    """Our metered usage as OpenAI's chat usage object (for answers whose provider usage was not usable)."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
