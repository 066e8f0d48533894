"""The `gemini` provider kind: Google's Gemini API (generativelanguage, v1beta base URL).

OpenAI-shaped calls are translated by `server.translate.gemini`: chat → generateContent, streaming
chat → streamGenerateContent?alt=sse fragment by fragment, embeddings → batchEmbedContents.
`generate_content` / `stream_generate_content` pass a Gemini-shaped body through untouched for the
gateway's own Gemini front door. The key goes in the `x-goog-api-key` header, never in the URL (URLs
end up in logs).

A Gemini stream has no end marker: it simply ends after the fragment carrying a finishReason (or a
promptFeedback.blockReason), so a stream that ends without one is treated as truncated.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from server.errors import UpstreamError
from server.metering import tokens_in
from server.providers.http import JSON, HttpProvider, MappedStream, SseStream, translation_error
from server.translate.errors import TranslationError
from server.translate.gemini import (
    GeminiStreamToChat,
    batch_embed_to_embeddings,
    chat_to_generate_content,
    embeddings_to_batch_embed,
    generate_content_to_chat,
)

_SSE = {"alt": "sse"}


def _finished(fragment: JSON) -> bool:
    candidates = fragment.get("candidates")
    if isinstance(candidates, list) and any(isinstance(c, dict) and c.get("finishReason") for c in candidates):
        return True
    feedback = fragment.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def _one(fragment: JSON) -> list[JSON]:
    return [fragment]


def _path(model: str, method: str) -> str:
    name = model.removeprefix("models/")
    return f"/models/{quote(name, safe='-._~')}:{method}"


class GeminiProvider(HttpProvider, kind="gemini"):
    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": api_key} if api_key else {}

    async def chat(self, model: str, body: dict[str, Any]) -> JSON:
        request = _translated(chat_to_generate_content, body)
        reply = await self._post_json(_path(model, "generateContent"), request)
        try:
            return generate_content_to_chat(reply, model)
        except TranslationError as exc:
            raise translation_error(exc) from None
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise _unreadable(self.name, exc) from None

    async def chat_stream(self, model: str, body: dict[str, Any]) -> MappedStream:
        """OpenAI chunks translated fragment by fragment, then the `choices: []` usage chunk (when Gemini
        reported usage, which it does on every fragment)."""
        request = _translated(chat_to_generate_content, body)
        source = await self._stream(model, request)
        translator = GeminiStreamToChat(model)
        return MappedStream(source, translator.feed, translator.finish)

    async def embeddings(self, model: str, body: dict[str, Any]) -> JSON:
        request = _translated(lambda b: embeddings_to_batch_embed(b, model), body)
        reply = await self._post_json(_path(model, "batchEmbedContents"), request)
        meta = reply.get("usageMetadata")
        prompt_tokens = meta.get("promptTokenCount") if isinstance(meta, dict) else None
        if not isinstance(prompt_tokens, int):
            # batchEmbedContents reports no token usage, so the metered count is an estimate from the
            # input text (~4 characters per token), the same estimate the gateway uses elsewhere.
            texts = [r["content"]["parts"][0]["text"] for r in request["requests"]]
            prompt_tokens = sum(tokens_in(len(t)) for t in texts)
        try:
            return batch_embed_to_embeddings(reply, model, body.get("encoding_format") or "float", prompt_tokens)
        except TranslationError as exc:
            raise translation_error(exc) from None

    async def generate_content(self, model: str, body: dict[str, Any]) -> JSON:
        """POST models/{model}:generateContent with the body as received; the raw GenerateContentResponse."""
        return await self._post_json(_path(model, "generateContent"), body)

    async def stream_generate_content(self, model: str, body: dict[str, Any]) -> MappedStream:
        """Raw GenerateContentResponse fragments (dicts) from streamGenerateContent?alt=sse; raises
        UpstreamError if the stream ends before a fragment with a finishReason."""
        return MappedStream(await self._stream(model, body), _one)

    async def _stream(self, model: str, request: JSON) -> SseStream:
        return await self._open_stream(
            _path(model, "streamGenerateContent"), request, _finished, stop_at_terminal=False, params=_SSE
        )


def _translated(translate: Any, body: dict[str, Any]) -> JSON:
    try:
        result: JSON = translate(body)
    except TranslationError as exc:
        raise translation_error(exc) from None
    return result


def _unreadable(provider: str, exc: Exception) -> UpstreamError:
    return UpstreamError(
        502, f"{provider} returned a response we cannot read ({exc!r})", retryable=True, upstream_status="invalid_json"
    )
