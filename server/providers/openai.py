"""The `openai` provider kind: any OpenAI-compatible base URL (OpenAI, vLLM, Ollama, Groq, ...).

Bodies are passed through as received apart from the model name, so fields we do not know survive.
Plumbing, timeouts and the failure mapping live in `server.providers.http`. Native methods serve the
gateway's `/v1/responses` front door by pass-through when the routed provider speaks OpenAI, and
`/v1/realtime` sessions are proxied to the base URL's realtime WebSocket (server.providers.realtime).
"""

from __future__ import annotations

from typing import Any

from server.providers.http import JSON, HttpProvider, MappedStream, SseStream, typed_events
from server.providers.realtime import RealtimeOptions, WebSocketUpstream, connect_websocket, realtime_url

_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _never(_: JSON) -> bool:
    return False


def _responses_terminal(event: JSON) -> bool:
    return event.get("type") in _RESPONSES_TERMINAL


class OpenAIProvider(HttpProvider, kind="openai"):
    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    async def chat(self, model: str, body: dict[str, Any]) -> JSON:
        return await self._post_json("/chat/completions", {**body, "model": model})

    async def embeddings(self, model: str, body: dict[str, Any]) -> JSON:
        return await self._post_json("/embeddings", {**body, "model": model})

    async def chat_stream(self, model: str, body: dict[str, Any]) -> SseStream:
        """Parsed chat.completion.chunk dicts; ends at `[DONE]` (not yielded), raises if it never comes."""
        upstream_body = {**body, "model": model, "stream": True}
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True  # we meter from the usage chunk; the relay drops it if unasked
        upstream_body["stream_options"] = options
        return await self._open_stream("/chat/completions", upstream_body, _never, done_marker="[DONE]")

    async def responses(self, model: str, body: dict[str, Any]) -> JSON:
        """POST /responses, body as received (model mapped, never streamed); the Response object back."""
        upstream_body = {**body, "model": model}
        upstream_body.pop("stream", None)
        return await self._post_json("/responses", upstream_body)

    async def responses_stream(self, model: str, body: dict[str, Any]) -> MappedStream:
        """`(event_type, data)` pairs from a streamed /responses, ending with response.completed,
        response.incomplete or response.failed (yielded); raises UpstreamError if none arrives."""
        upstream_body = {**body, "model": model, "stream": True}
        source = await self._open_stream("/responses", upstream_body, _responses_terminal)
        return MappedStream(source, typed_events)

    async def realtime(self, model: str, options: RealtimeOptions) -> WebSocketUpstream:
        """A WebSocket session at the base URL's /realtime, with the gateway's own key."""
        url = realtime_url(self.settings.base_url or "", model)
        return await connect_websocket(self.name, url, self.settings.api_key(), options, self._timeouts.connect)
