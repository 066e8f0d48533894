"""The Provider protocol every upstream kind implements, and the optional native methods.

Exceptions: every failure surfaces as `server.errors.UpstreamError` with `retryable` set for connect
errors, timeouts, 429 and 5xx (the next target is tried) and unset for other 4xx (returned as is).
A request the provider cannot express (say, audio to Anthropic) is a final UpstreamError with the
translator's status and code (400 `audio_not_supported_by_model`). A stream that ends before its
terminal event raises UpstreamError ("truncated") from the iterator; so does an error event in it.

Every provider serves OpenAI shapes (`chat`, `chat_stream`, `embeddings`). A provider whose wire
format matches one of the gateway's front doors also offers native pass-through methods, so a body
in that format is forwarded as received (only the model mapped) and unknown fields survive. Its class
attribute `native_format` says which set it has ("openai" | "anthropic" | "gemini"; None for mock):

    "openai"    responses(model, body) -> dict                       POST /responses
                responses_stream(model, body) -> EventStream[(event_type, data)]
                    ends with response.completed / response.incomplete / response.failed
    "anthropic" messages(model, body, headers=None) -> dict          POST /v1/messages
                messages_stream(model, body, headers=None) -> EventStream[(event_name, data)]
                    ends with message_stop
    "gemini"    generate_content(model, body) -> dict                models/{model}:generateContent
                stream_generate_content(model, body) -> EventStream[fragment dict]
                    ends after the fragment carrying a finishReason

The gateway checks `provider.native_format == <front door's format>` (or hasattr) before using them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)


class EventStream(Protocol[T_co]):
    """An opened upstream stream: items in order; raises UpstreamError on a broken stream."""

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    async def aclose(self) -> None: ...


ChatStream = EventStream[dict[str, Any]]  # parsed OpenAI chunk dicts


class Provider(Protocol):
    name: str
    native_format: str | None

    async def chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def chat_stream(self, model: str, body: dict[str, Any]) -> ChatStream: ...

    async def embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class OpenAINative(Protocol):
    """Pass-through for the /v1/responses front door."""

    async def responses(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def responses_stream(self, model: str, body: dict[str, Any]) -> EventStream[tuple[str, dict[str, Any]]]: ...


class AnthropicNative(Protocol):
    """Pass-through for the Anthropic-compatible /v1/messages front door."""

    async def messages(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]: ...

    async def messages_stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> EventStream[tuple[str, dict[str, Any]]]: ...


class GeminiNative(Protocol):
    """Pass-through for the Gemini-compatible front door."""

    async def generate_content(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def stream_generate_content(self, model: str, body: dict[str, Any]) -> EventStream[dict[str, Any]]: ...
