"""The Provider protocol every upstream kind implements, and the optional native methods.

Exceptions: every failure surfaces as `server.errors.UpstreamError` with `retryable` set for connect
errors, timeouts, 429 and 5xx (the next target is tried) and unset for other 4xx (returned as is).
A request the provider cannot express (say, audio to Anthropic) is a final UpstreamError with the
translator's status and code (400 `audio_not_supported_by_model`). A stream that ends before its
terminal event raises UpstreamError ("truncated") from the iterator; so does an error event in it.

Every provider serves OpenAI chat shapes (`chat`, `chat_stream`). A provider whose wire format
matches one of the gateway's front doors also serves that dialect natively, so a body in that format
is forwarded as received (only the model mapped) and unknown fields survive. Its `dialects` say which
(server.providers.kinds); the native methods:

    "responses" responses(model, body) -> dict                       POST /responses
                responses_stream(model, body) -> EventStream[(event_type, data)]
                    ends with response.completed / response.incomplete / response.failed
    "messages"  messages(model, body, headers=None) -> dict          POST /v1/messages
                messages_stream(model, body, headers=None) -> EventStream[(event_name, data)]
                    ends with message_stop
    "gemini"    generate_content(model, body) -> dict                models/{model}:generateContent
                stream_generate_content(model, body) -> EventStream[fragment dict]
                    ends after the fragment carrying a finishReason

A dialect uses them when its name is in the provider's `dialects`.

Media (capabilities images, speech, transcription, video, music; OpenAI's wire formats, which the
`openai` kind passes through and the `mock` kind serves itself):

    images_generate(model, body) -> dict               POST /images/generations (JSON; b64_json asked)
    images_edit(model, form) -> dict                   POST /images/edits (multipart, re-streamed)
    speech(model, body) -> ByteStream                  POST /audio/speech (audio bytes, streamed)
    transcribe(model, form, task) -> RawAnswer         POST /audio/transcriptions | /audio/translations
    job_create(kind, model, form, key) -> dict         POST /videos (multipart; `key` is the Idempotency-Key)
    job_status(kind, upstream_id) -> dict              GET /videos/{id}: status, progress, seconds, error
    job_content(kind, upstream_id) -> ByteStream       GET /videos/{id}/content

A provider serving the `realtime` capability opens upstream sessions for `/v1/realtime` with
`realtime(model, options) -> RealtimeUpstream` (server.providers.realtime); the others refuse with a 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar, Protocol, TypeVar

from server.errors import UpstreamError
from server.providers.forms import Form
from server.providers.kinds import CAPABILITIES, DIALECTS
from server.providers.media import ByteStream, RawAnswer
from server.providers.realtime import RealtimeOptions, RealtimeUpstream

T_co = TypeVar("T_co", covariant=True)


class EventStream(Protocol[T_co]):
    """An opened upstream stream: items in order; raises UpstreamError on a broken stream."""

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    async def aclose(self) -> None: ...


ChatStream = EventStream[dict[str, Any]]  # parsed OpenAI chunk dicts


class Provider(Protocol):
    """Every provider has every method; `capabilities` and `dialects` say which it really serves (checked
    when the config loads), and a method it does not serve fails with a final UpstreamError (400)."""

    name: str
    capabilities: frozenset[str]  # what a model routed here may serve: chat, embeddings, tools, vision, json
    dialects: frozenset[str]  # front doors it speaks natively: chat, embeddings, responses, messages, gemini

    async def chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def chat_stream(self, model: str, body: dict[str, Any]) -> ChatStream: ...

    async def embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def responses(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /responses with the body as received (dialect "responses")."""
        ...

    async def responses_stream(self, model: str, body: dict[str, Any]) -> EventStream[tuple[str, dict[str, Any]]]:
        """`(event_type, data)` pairs ending with response.completed / incomplete / failed."""
        ...

    async def messages(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """POST /v1/messages with the body as received (dialect "messages")."""
        ...

    async def messages_stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> EventStream[tuple[str, dict[str, Any]]]:
        """`(event_name, data)` pairs ending with message_stop."""
        ...

    async def generate_content(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """models/{model}:generateContent with the body as received (dialect "gemini")."""
        ...

    async def stream_generate_content(self, model: str, body: dict[str, Any]) -> EventStream[dict[str, Any]]:
        """Fragments, ending after the one carrying a finishReason."""
        ...

    async def realtime(self, model: str, options: RealtimeOptions) -> RealtimeUpstream:
        """An upstream realtime session (capability "realtime"); raises UpstreamError before it is open."""
        ...

    async def probe(self) -> str:
        """A cheap authenticated call (the models list) for `gatewayctl doctor`: what answered, or raises
        UpstreamError (unreachable, timed out, credentials refused)."""
        ...

    async def images_generate(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def images_edit(self, model: str, form: Form) -> dict[str, Any]: ...

    async def speech(self, model: str, body: dict[str, Any]) -> ByteStream: ...

    async def transcribe(self, model: str, form: Form, task: str) -> RawAnswer: ...

    async def job_create(self, kind: str, model: str, form: Form, key: str) -> dict[str, Any]: ...

    async def job_status(self, kind: str, upstream_id: str) -> dict[str, Any]: ...

    async def job_content(self, kind: str, upstream_id: str) -> ByteStream: ...

    async def aclose(self) -> None: ...


class ProviderBase:
    """What every kind inherits: a method the kind does not serve is a final, clear 400."""

    name: str
    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    dialects: ClassVar[frozenset[str]]

    def __init_subclass__(cls, kind: str = "", **rest: Any) -> None:
        super().__init_subclass__(**rest)
        if kind:
            cls.kind, cls.capabilities, cls.dialects = kind, CAPABILITIES[kind], DIALECTS[kind]

    def _not_served(self, what: str) -> UpstreamError:
        return UpstreamError(
            400, f"provider {self.name} ({self.kind}) does not serve {what}", retryable=False, upstream_status=400
        )

    async def probe(self) -> str:
        return "built in, nothing to reach"

    async def embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self._not_served("embeddings")

    async def responses(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self._not_served("the Responses API natively")

    async def responses_stream(self, model: str, body: dict[str, Any]) -> EventStream[tuple[str, dict[str, Any]]]:
        raise self._not_served("the Responses API natively")

    async def messages(self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        raise self._not_served("the Anthropic Messages API natively")

    async def messages_stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> EventStream[tuple[str, dict[str, Any]]]:
        raise self._not_served("the Anthropic Messages API natively")

    async def generate_content(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self._not_served("Gemini generateContent natively")

    async def stream_generate_content(self, model: str, body: dict[str, Any]) -> EventStream[dict[str, Any]]:
        raise self._not_served("Gemini generateContent natively")

    async def images_generate(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self._not_served("image generation")

    async def images_edit(self, model: str, form: Form) -> dict[str, Any]:
        raise self._not_served("image edits")

    async def speech(self, model: str, body: dict[str, Any]) -> ByteStream:
        raise self._not_served("speech")

    async def transcribe(self, model: str, form: Form, task: str) -> RawAnswer:
        raise self._not_served("transcription")

    async def job_create(self, kind: str, model: str, form: Form, key: str) -> dict[str, Any]:
        raise self._not_served(f"{kind} generation")

    async def job_status(self, kind: str, upstream_id: str) -> dict[str, Any]:
        raise self._not_served(f"{kind} generation")

    async def job_content(self, kind: str, upstream_id: str) -> ByteStream:
        raise self._not_served(f"{kind} generation")

    async def realtime(self, model: str, options: RealtimeOptions) -> RealtimeUpstream:
        raise self._not_served("realtime sessions")
