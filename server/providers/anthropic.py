"""The `anthropic` provider kind: Anthropic's Messages API.

OpenAI-shaped calls (`chat`, `chat_stream`) are translated by `server.translate.anthropic`, streams event
by event; the returned completion carries OpenAI `usage` (cache reads as cached_tokens), which is what
the gateway meters. `messages` / `messages_stream` pass an Anthropic-shaped body through untouched
(model mapped) for the gateway's own /v1/messages front door. Anthropic has no embeddings endpoint.

Every request carries `x-api-key` and `anthropic-version`; a stream is complete only once it has sent
`message_stop`, and an `error` event (such as overloaded_error mid-stream) is a retryable failure.
"""

from __future__ import annotations

from typing import Any

from server.errors import UpstreamError
from server.providers.http import JSON, HttpProvider, MappedStream, SseStream, translation_error, typed_events
from server.translate.anthropic import MessagesStreamToChat, chat_to_messages, messages_to_chat
from server.translate.errors import TranslationError


def _message_stop(event: JSON) -> bool:
    return event.get("type") == "message_stop"


class AnthropicProvider(HttpProvider, kind="anthropic"):
    def _base_url(self, configured: str) -> str:
        base = configured.rstrip("/")
        return base if base.endswith("/v1") else f"{base}/v1"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.settings.anthropic_version}
        return headers | ({"x-api-key": api_key} if api_key else {})

    def _translate(self, body: dict[str, Any], model: str) -> JSON:
        try:
            return chat_to_messages(body, model, self.settings.default_max_tokens)
        except TranslationError as exc:
            raise translation_error(exc) from None

    async def chat(self, model: str, body: dict[str, Any]) -> JSON:
        request = self._translate({**body, "stream": False}, model)
        reply = await self._post_json("/messages", request)
        try:
            return messages_to_chat(reply, str(reply.get("model") or model))
        except (TranslationError, KeyError, TypeError, AttributeError) as exc:
            raise _unreadable(self.name, exc) from None

    async def chat_stream(self, model: str, body: dict[str, Any]) -> MappedStream:
        """OpenAI chunks translated from the event stream; the last is the `choices: []` usage chunk."""
        request = self._translate({**body, "stream": True}, model)
        source = await self._open_stream("/messages", request, _message_stop)
        return MappedStream(source, MessagesStreamToChat(model).feed)

    async def embeddings(self, model: str, body: dict[str, Any]) -> JSON:
        raise UpstreamError(
            400, f"embeddings not supported by anthropic (provider {self.name})", retryable=False, upstream_status=400
        )

    async def messages(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSON:
        """POST /v1/messages with the body as received (model mapped, never streamed); the Message back.
        `headers` adds request headers such as `anthropic-beta` from the client."""
        request = {**body, "model": model}
        request.pop("stream", None)
        return await self._post_json("/messages", request, headers=headers)

    async def messages_stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> MappedStream:
        """Raw `(event_name, data)` pairs, ping included, ending with `("message_stop", ...)`; raises
        UpstreamError if the stream ends before it or sends an `error` event."""
        source: SseStream = await self._open_stream(
            "/messages", {**body, "model": model, "stream": True}, _message_stop, headers=headers
        )
        return MappedStream(source, typed_events)


def _unreadable(provider: str, exc: Exception) -> UpstreamError:
    if isinstance(exc, TranslationError):
        return translation_error(exc)
    return UpstreamError(
        502, f"{provider} returned a message we cannot read ({exc!r})", retryable=True, upstream_status="invalid_json"
    )
