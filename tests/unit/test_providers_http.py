"""The shared HTTP plumbing and the OpenAI kind's native /responses pass-through, over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx2 as httpx
import pytest

from server.errors import UpstreamError
from server.providers.http import error_message
from server.providers.openai import OpenAIProvider
from server.providers.registry import KINDS
from server.settings import ProviderSettings

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]


def sse(*events: Any) -> bytes:
    return b"".join(f"event: {e.get('type', 'x')}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def run(
    handler: Handler, action: Callable[[OpenAIProvider], Awaitable[T]], monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> T:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-gateway")
    settings = ProviderSettings(
        name="oai", kind="openai", base_url="http://upstream.test/v1", api_key_env="TEST_OPENAI_KEY", **extra
    )

    async def go() -> T:
        provider = OpenAIProvider(settings, transport=httpx.MockTransport(handler))
        try:
            return await action(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


async def collect(opening: Awaitable[Any]) -> list[Any]:
    return [item async for item in await opening]


def test_every_kind_has_one_registry_line_and_says_its_native_format() -> None:
    assert set(KINDS) == {"openai", "anthropic", "gemini", "mock"}
    native = {kind: cls.dialects - {"chat", "embeddings"} for kind, cls in KINDS.items()}
    assert native == {"openai": {"responses"}, "anthropic": {"messages"}, "gemini": {"gemini"}, "mock": set()}
    assert "embeddings" not in KINDS["anthropic"].capabilities and "embeddings" in KINDS["mock"].capabilities


def test_responses_passes_the_body_through_with_only_the_model_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    answer = {"id": "resp_1", "object": "response", "status": "completed", "output": [], "usage": {"input_tokens": 3}}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer)

    body = {"model": "public", "input": "hi", "stream": False, "some_new_field": {"kept": True}}
    reply = run(handler, lambda p: p.responses("gpt-upstream", body), monkeypatch)
    assert reply == answer
    assert seen[0].url.path == "/v1/responses" and seen[0].headers["authorization"] == "Bearer sk-gateway"
    assert json.loads(seen[0].content) == {"model": "gpt-upstream", "input": "hi", "some_new_field": {"kept": True}}


def test_responses_stream_yields_typed_events_up_to_the_terminal_one(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [
        {"type": "response.created", "response": {"id": "resp_1"}},
        {"type": "response.output_text.delta", "delta": "Hi"},
        {"type": "response.completed", "response": {"id": "resp_1", "usage": {"input_tokens": 3}}},
    ]
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, content=sse(*events), headers={"content-type": "text/event-stream"})

    pairs = run(handler, lambda p: collect(p.responses_stream("gpt-upstream", {"input": "hi"})), monkeypatch)
    assert pairs == [(e["type"], e) for e in events]
    assert sent == [{"input": "hi", "model": "gpt-upstream", "stream": True}]


@pytest.mark.parametrize("terminal", ["response.incomplete", "response.failed"])
def test_responses_stream_accepts_every_terminal_event(monkeypatch: pytest.MonkeyPatch, terminal: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse({"type": "response.created"}, {"type": terminal}))

    pairs = run(handler, lambda p: collect(p.responses_stream("m", {"input": "hi"})), monkeypatch)
    assert [name for name, _ in pairs] == ["response.created", terminal]


def test_responses_stream_without_a_terminal_event_is_truncated(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse({"type": "response.created"}, {"type": "response.output_text.delta"}))

    with pytest.raises(UpstreamError) as info:
        run(handler, lambda p: collect(p.responses_stream("m", {"input": "hi"})), monkeypatch)
    assert (info.value.status, info.value.retryable, info.value.upstream_status) == (502, True, "truncated")


def test_an_error_event_in_a_stream_is_a_retryable_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {"type": "error", "code": "server_error", "message": "The server had an error"}
        return httpx.Response(200, content=sse({"type": "response.created"}, error))

    with pytest.raises(UpstreamError) as info:
        run(handler, lambda p: collect(p.responses_stream("m", {"input": "hi"})), monkeypatch)
    assert (info.value.retryable, info.value.upstream_status) == (True, "stream_error")
    assert "The server had an error" in info.value.message


def test_chat_stream_still_ends_at_done_and_asks_for_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, content=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

    chunks = run(handler, lambda p: collect(p.chat_stream("m", {"messages": []})), monkeypatch)
    assert chunks == [chunk] and sent[0]["stream_options"] == {"include_usage": True}


def test_retry_after_comes_from_the_header_or_a_gemini_retry_info(monkeypatch: pytest.MonkeyPatch) -> None:
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}
    google = {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
    google["error"]["details"] = [retry_info]
    replies = [
        httpx.Response(429, json=google),
        httpx.Response(429, json=google, headers={"retry-after": "7"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return replies.pop(0)

    for expected in (2.5, 7.0):
        with pytest.raises(UpstreamError) as info:
            run(handler, lambda p: p.chat("m", {"messages": []}), monkeypatch)
        assert (info.value.status, info.value.retry_after, info.value.retryable) == (503, expected, True)
        assert "Resource exhausted" in info.value.message


def test_other_client_errors_are_final_with_the_upstream_status(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": {"message": "bad field", "type": "invalid_request_error"}})

    with pytest.raises(UpstreamError) as info:
        run(handler, lambda p: p.chat("m", {"messages": []}), monkeypatch)
    assert (info.value.status, info.value.retryable, info.value.upstream_status) == (422, False, 422)


def test_error_message_reads_all_three_shapes() -> None:
    assert error_message({"error": {"message": "openai says", "type": "x"}}) == "openai says"
    assert error_message({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}) == (
        "Overloaded"
    )
    assert error_message({"error": {"code": 400, "message": "google says", "status": "INVALID_ARGUMENT"}}) == (
        "google says"
    )
    assert error_message(None) == "" and error_message({"type": "error", "message": "responses event"}) == (
        "responses event"
    )


def _capped(handler: Handler, action: Callable[[OpenAIProvider], Awaitable[T]]) -> T:
    """`action` against a provider whose answers may weigh 1 MiB at the most."""
    return run(handler, action, pytest.MonkeyPatch(), max_response_mb=1)


def test_an_answer_past_the_size_cap_is_a_502_before_it_is_buffered() -> None:
    huge = b'{"choices": [], "padding": "' + b"x" * (3 << 20) + b'"}'

    def declared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=huge, headers={"content-type": "application/json"})

    async def chunked_body() -> Any:
        for _ in range(64):
            yield b"x" * (64 << 10)

    def undeclared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunked_body())

    for handler in (declared, undeclared):
        with pytest.raises(UpstreamError) as info:
            _capped(handler, lambda p: p.chat("m", {"messages": []}))
        assert (info.value.status, info.value.upstream_status, info.value.retryable) == (502, "too_large", False)


def test_a_stream_event_past_the_size_cap_is_a_502() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"data: " + b"x" * (2 << 20), headers={"content-type": "text/event-stream"})

    with pytest.raises(UpstreamError) as info:
        _capped(handler, lambda p: collect(p.chat_stream("m", {"messages": []})))
    assert info.value.upstream_status == "too_large"


def test_retry_after_that_is_not_a_finite_number_is_ignored() -> None:
    for value in ("nan", "inf", "-5", "Wed, 21 Oct 2026 07:28:00 GMT"):

        def handler(request: httpx.Request, value: str = value) -> httpx.Response:
            return httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": value})

        with pytest.raises(UpstreamError) as info:
            _capped(handler, lambda p: p.chat("m", {"messages": []}))
        assert info.value.retry_after is None
