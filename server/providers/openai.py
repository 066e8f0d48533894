"""The `openai` provider kind: any OpenAI-compatible base URL (OpenAI, vLLM, Ollama, Groq, ...).

Bodies are passed through as received apart from the model name, so fields we do not know survive.
Plumbing, timeouts and the failure mapping live in `server.providers.http`. Native methods serve the
gateway's `/v1/responses` front door by pass-through when the routed provider speaks OpenAI, and
`/v1/realtime` sessions are proxied to the base URL's realtime WebSocket (server.providers.realtime).

Media pass through OpenAI's own routes: images (JSON, and multipart edits re-streamed from the files the
gateway received, never read whole), speech (audio bytes streamed back), transcriptions and translations
(multipart in, the answer in the format asked), and videos (a job: created with the job's id as its
Idempotency-Key, so a resubmission after a crash cannot start a second one; polled; its content streamed).
"""

from __future__ import annotations

from typing import Any

from server.providers.forms import Form
from server.providers.http import JSON, BytesStream, HttpProvider, MappedStream, SseStream, typed_events
from server.providers.media import RawAnswer
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

    async def images_generate(self, model: str, body: dict[str, Any]) -> JSON:
        return await self._post_json("/images/generations", {**body, "model": model})

    async def images_edit(self, model: str, form: Form) -> JSON:
        return await self._post_json("/images/edits", None, form=_with_model(form, model).encode())

    async def speech(self, model: str, body: dict[str, Any]) -> BytesStream:
        return await self._open_bytes("/audio/speech", {**body, "model": model})

    async def transcribe(self, model: str, form: Form, task: str) -> RawAnswer:
        content_type, raw = await self._whole(f"/audio/{task}", None, form=_with_model(form, model).encode())
        return RawAnswer(content_type, raw)

    async def job_create(self, kind: str, model: str, form: Form, key: str) -> JSON:
        if kind != "video":
            raise self._not_served(f"{kind} generation")
        encoded = _with_model(form, model).encode()
        return await self._post_json("/videos", None, headers={"idempotency-key": key}, form=encoded)

    async def job_status(self, kind: str, upstream_id: str) -> JSON:
        return await self._post_json(f"/videos/{upstream_id}", None, method="GET")

    async def job_content(self, kind: str, upstream_id: str) -> BytesStream:
        return await self._open_bytes(f"/videos/{upstream_id}/content", None, method="GET")

    async def realtime(self, model: str, options: RealtimeOptions) -> WebSocketUpstream:
        """A WebSocket session at the base URL's /realtime, with the gateway's own key."""
        url = realtime_url(self.settings.base_url or "", model)
        return await connect_websocket(self.name, url, self.settings.api_key(), options, self._timeouts.connect)


def _with_model(form: Form, model: str) -> Form:
    """The form with its model field set to the upstream model name (the client's public name replaced)."""
    return Form([(name, value) for name, value in form.fields if name != "model"] + [("model", model)], form.files)
