"""The anthropic and gemini provider kinds, driven directly against the strict stand-in processes.

The stand-ins refuse what the real APIs refuse (missing anthropic-version, unknown fields, no key), so a
request they answer is one the real API would take; failures are switched on with their /_behavior route.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from server.errors import UpstreamError
from server.providers.anthropic import AnthropicProvider
from server.providers.gemini import GeminiProvider
from server.providers.registry import KINDS
from server.settings import ProviderSettings
from tests.upstreams.anthropic_upstream import AnthropicUpstreamProcess, input_tokens, start_anthropic_process
from tests.upstreams.gemini_upstream import (
    GeminiUpstreamProcess,
    expected_embedding,
    prompt_tokens,
    start_gemini_upstream,
)

T = TypeVar("T")
KEY_ENV = "TEST_PROVIDER_SECRET"
HELLO = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
AUDIO = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is said here?"},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        ],
    }
]


@pytest.fixture(scope="module")
def anthropic_up() -> Iterator[AnthropicUpstreamProcess]:
    proc = start_anthropic_process()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gemini_up() -> Iterator[GeminiUpstreamProcess]:
    proc = start_gemini_upstream()
    yield proc
    proc.stop()


@pytest.fixture()
def anth(anthropic_up: AnthropicUpstreamProcess, monkeypatch: pytest.MonkeyPatch) -> ProviderSettings:
    anthropic_up.clear()
    monkeypatch.setenv(KEY_ENV, "sk-ant-gateway")
    return ProviderSettings(name="anth", kind="anthropic", base_url=anthropic_up.base_url, api_key_env=KEY_ENV)


@pytest.fixture()
def gem(gemini_up: GeminiUpstreamProcess, monkeypatch: pytest.MonkeyPatch) -> ProviderSettings:
    gemini_up.clear()
    monkeypatch.setenv(KEY_ENV, "gemini-gateway-key")
    return ProviderSettings(name="gem", kind="gemini", base_url=gemini_up.base_url, api_key_env=KEY_ENV)


def run(settings: ProviderSettings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Build the provider the way the registry does, inside the loop that will use its client."""

    async def go() -> T:
        provider = KINDS[settings.kind](settings)
        try:
            return await action(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


async def collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


def fails(settings: ProviderSettings, action: Callable[[Any], Awaitable[Any]]) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        run(settings, action)
    return info.value


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# ----------------------------------------------------------------------------------------------- anthropic


def test_anthropic_chat_translates_both_ways_with_usage(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    reply = run(anth, lambda p: p.chat("claude-test", {"messages": HELLO}))
    sent = anthropic_up.received()[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-ant-gateway"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["json"]["max_tokens"] == 4096 and sent["json"]["system"] == "be brief"
    assert reply["object"] == "chat.completion" and reply["model"] == "claude-test"
    assert reply["choices"][0]["message"]["content"] == "anthropic reply to: hello there"
    assert reply["choices"][0]["finish_reason"] == "stop"
    prompt = input_tokens(sent["json"])
    assert reply["usage"]["prompt_tokens"] == prompt and reply["usage"]["completion_tokens"] == 5
    assert reply["usage"]["total_tokens"] == prompt + 5
    assert reply["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_anthropic_settings_version_max_tokens_and_v1_base(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    custom = anth.model_copy(
        update={"base_url": anthropic_up.base_url + "/v1/", "anthropic_version": "2099-01-01", "default_max_tokens": 77}
    )
    run(custom, lambda p: p.chat("claude-test", {"messages": HELLO}))
    run(custom, lambda p: p.chat("claude-test", {"messages": HELLO, "max_completion_tokens": 9}))
    first, second = anthropic_up.received()[-2:]
    assert first["path"] == "/v1/messages"  # a base already ending in /v1 is not doubled
    assert first["headers"]["anthropic-version"] == "2099-01-01"
    assert (first["json"]["max_tokens"], second["json"]["max_tokens"]) == (77, 9)


def test_anthropic_chat_stream_yields_openai_chunks_then_usage(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    chunks = run(anth, lambda p: _stream(p.chat_stream("claude-test", {"messages": HELLO, "stream": True})))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert text_of(chunks) == "anthropic reply to: hello there"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == input_tokens(anthropic_up.received()[-1]["json"])
    assert last["usage"]["completion_tokens"] == 5
    assert anthropic_up.received()[-1]["json"]["stream"] is True


async def _stream(opening: Awaitable[Any]) -> list[Any]:
    return await collect(await opening)


def test_anthropic_tools_become_tool_calls(anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess) -> None:
    body = {"messages": HELLO, "tools": TOOLS, "tool_choice": "required"}
    reply = run(anth, lambda p: p.chat("claude-test", body))
    sent = anthropic_up.received()[-1]["json"]
    assert sent["tools"][0]["name"] == "get_weather" and sent["tool_choice"] == {"type": "any"}
    call = reply["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"x": 1}'}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    chunks = run(anth, lambda p: _stream(p.chat_stream("claude-test", body)))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [t for d in deltas for t in d.get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"].startswith("toolu_")
    assert json.loads("".join(t["function"]["arguments"] for t in calls)) == {"x": 1}


def test_anthropic_audio_is_a_final_400_before_any_call(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    for action in (
        lambda p: p.chat("claude-test", {"messages": AUDIO}),
        lambda p: p.chat_stream("claude-test", {"messages": AUDIO}),
    ):
        err = fails(anth, action)
        assert (err.status, err.code, err.retryable) == (400, "audio_not_supported_by_model", False)
        assert err.openai_body()["error"]["code"] == "audio_not_supported_by_model"
    assert anthropic_up.received() == []


@pytest.mark.parametrize(("upstream", "status"), [(529, 502), (500, 502), (429, 503)])
def test_anthropic_overload_errors_and_rate_limits_are_retryable(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess, upstream: int, status: int
) -> None:
    anthropic_up.set_behavior(status=upstream, times=2)
    for action in (
        lambda p: p.chat("claude-test", {"messages": HELLO}),
        lambda p: p.chat_stream("claude-test", {"messages": HELLO}),
    ):
        err = fails(anth, action)
        assert (err.status, err.retryable, err.upstream_status) == (status, True, upstream)
        assert err.retry_after == (1.0 if upstream == 429 else None)
        assert err.body and err.body["type"] == "error"  # the upstream body is kept for the front doors


def test_anthropic_refusing_our_key_is_a_gateway_fault(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    anthropic_up.set_behavior(status=401, times=1)
    err = fails(anth, lambda p: p.chat("claude-test", {"messages": HELLO}))
    assert (err.status, err.retryable) == (502, False)
    assert "refused the gateway's credentials (invalid x-api-key)" in err.message


def test_anthropic_stream_cut_before_message_stop_is_truncated(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    anthropic_up.set_behavior(fail_after_events=4, times=2)
    err = fails(anth, lambda p: _stream(p.chat_stream("claude-test", {"messages": HELLO})))
    assert (err.status, err.retryable, err.upstream_status) == (502, True, "truncated")
    err = fails(anth, lambda p: _stream(p.messages_stream("claude-test", _native_body())))
    assert err.upstream_status == "truncated"


def test_anthropic_error_event_mid_stream_is_retryable(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    anthropic_up.set_behavior(error_after_events=3, times=1)
    err = fails(anth, lambda p: _stream(p.chat_stream("claude-test", {"messages": HELLO})))
    assert (err.status, err.retryable, err.upstream_status) == (502, True, "stream_error")
    assert "Overloaded" in err.message


def test_anthropic_has_no_embeddings(anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess) -> None:
    err = fails(anth, lambda p: p.embeddings("claude-test", {"input": "hi"}))
    assert (err.status, err.retryable) == (400, False)
    assert "embeddings not supported by anthropic" in err.message
    assert anthropic_up.received() == []


def _native_body() -> dict[str, Any]:
    return {"model": "public-name", "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}]}


def test_anthropic_native_pass_through_returns_raw_shapes(
    anth: ProviderSettings, anthropic_up: AnthropicUpstreamProcess
) -> None:
    provider_type: type = AnthropicProvider
    assert "messages" in provider_type.dialects
    message = run(anth, lambda p: p.messages("claude-test", {**_native_body(), "top_k": 3}))
    sent = anthropic_up.received()[-1]["json"]
    assert sent == {**_native_body(), "model": "claude-test", "top_k": 3}  # untouched apart from the model
    assert message["type"] == "message" and message["content"][0]["text"] == "anthropic reply to: hello there"
    assert message["usage"]["input_tokens"] == input_tokens(sent)
    beta = {"anthropic-beta": "prompt-caching-2024-07-31"}
    events = run(anth, lambda p: _stream(p.messages_stream("claude-test", _native_body(), headers=beta)))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "ping" in names
    assert all(name == data["type"] for name, data in events)
    received = anthropic_up.received()[-1]
    assert received["json"]["stream"] is True and received["headers"]["anthropic-beta"] == beta["anthropic-beta"]


# ----------------------------------------------------------------------------------------------- gemini


def test_gemini_chat_sends_the_key_in_a_header_and_translates(
    gem: ProviderSettings, gemini_up: GeminiUpstreamProcess
) -> None:
    reply = run(gem, lambda p: p.chat("gemini-test", {"messages": HELLO, "max_tokens": 50}))
    sent = gemini_up.received()[-1]
    assert sent["path"] == "/v1beta/models/gemini-test:generateContent"
    assert sent["headers"]["x-goog-api-key"] == "gemini-gateway-key" and "key=" not in sent["query"]
    assert sent["json"]["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert reply["object"] == "chat.completion" and reply["model"] == "gemini-test"
    assert reply["choices"][0]["message"]["content"] == "gemini reply to: hello there"
    prompt = prompt_tokens(sent["json"])
    assert reply["usage"]["prompt_tokens"] == prompt and reply["usage"]["completion_tokens"] == 5
    assert reply["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_gemini_chat_stream_yields_openai_chunks_then_usage(
    gem: ProviderSettings, gemini_up: GeminiUpstreamProcess
) -> None:
    chunks = run(gem, lambda p: _stream(p.chat_stream("gemini-test", {"messages": HELLO, "stream": True})))
    sent = gemini_up.received()[-1]
    assert sent["path"] == "/v1beta/models/gemini-test:streamGenerateContent" and sent["query"] == "alt=sse"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert text_of(chunks) == "gemini reply to: hello there"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == prompt_tokens(sent["json"])
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_gemini_tools_become_tool_calls(gem: ProviderSettings, gemini_up: GeminiUpstreamProcess) -> None:
    body = {"messages": HELLO, "tools": TOOLS, "tool_choice": "required"}
    reply = run(gem, lambda p: p.chat("gemini-test", body))
    call = reply["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"x": 1}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    chunks = run(gem, lambda p: _stream(p.chat_stream("gemini-test", body)))
    calls = [t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [t["function"]["name"] for t in calls] == ["get_weather"]


@pytest.mark.parametrize(("upstream", "status", "retry_after"), [(429, 503, 1.0), (500, 502, None), (503, 502, None)])
def test_gemini_rate_limits_and_server_errors_are_retryable(
    gem: ProviderSettings, gemini_up: GeminiUpstreamProcess, upstream: int, status: int, retry_after: float | None
) -> None:
    gemini_up.set_behavior(status=upstream, times=1)
    err = fails(gem, lambda p: p.chat("gemini-test", {"messages": HELLO}))
    assert (err.status, err.retryable, err.upstream_status) == (status, True, upstream)
    assert err.retry_after == retry_after  # 429 carries google.rpc.RetryInfo retryDelay "1s", no header


def test_gemini_rejecting_our_key_is_a_gateway_fault(
    gem: ProviderSettings, monkeypatch: pytest.MonkeyPatch, gemini_up: GeminiUpstreamProcess
) -> None:
    monkeypatch.setenv(KEY_ENV, "invalid-key")
    err = fails(gem, lambda p: p.chat("gemini-test", {"messages": HELLO}))
    assert (err.status, err.retryable, err.upstream_status) == (502, False, 400)
    assert "refused the gateway's credentials (API key not valid" in err.message


def test_gemini_stream_cut_before_finish_reason_is_truncated(
    gem: ProviderSettings, gemini_up: GeminiUpstreamProcess
) -> None:
    gemini_up.set_behavior(fail_after_chunks=2, times=2)
    err = fails(gem, lambda p: _stream(p.chat_stream("gemini-test", {"messages": HELLO})))
    assert (err.status, err.retryable, err.upstream_status) == (502, True, "truncated")
    native = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
    err = fails(gem, lambda p: _stream(p.stream_generate_content("gemini-test", native)))
    assert err.upstream_status == "truncated"


def test_gemini_embeddings(gem: ProviderSettings, gemini_up: GeminiUpstreamProcess) -> None:
    body = {"input": ["hello there", "second text"], "dimensions": 4}
    reply = run(gem, lambda p: p.embeddings("text-embedding-004", body))
    sent = gemini_up.received()[-1]
    assert sent["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent["headers"]["x-goog-api-key"] == "gemini-gateway-key"
    assert reply["object"] == "list" and reply["model"] == "text-embedding-004"
    for item, text in zip(reply["data"], ["hello there", "second text"], strict=True):
        assert item["embedding"] == pytest.approx(expected_embedding(text, 4))
    assert reply["usage"] == {"prompt_tokens": 6, "total_tokens": 6}  # estimated: Gemini reports no usage here
    encoded = run(gem, lambda p: p.embeddings("text-embedding-004", {"input": "hi", "encoding_format": "base64"}))
    assert isinstance(encoded["data"][0]["embedding"], str)


def test_gemini_native_pass_through_returns_raw_shapes(gem: ProviderSettings, gemini_up: GeminiUpstreamProcess) -> None:
    provider_type: type = GeminiProvider
    assert "gemini" in provider_type.dialects
    native = {
        "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
        "generationConfig": {"temperature": 0.2},
    }
    reply = run(gem, lambda p: p.generate_content("gemini-test", native))
    assert gemini_up.received()[-1]["json"] == native
    assert reply["candidates"][0]["content"]["parts"][0]["text"] == "gemini reply to: hello there"
    assert reply["usageMetadata"]["promptTokenCount"] == prompt_tokens(native)
    fragments = run(gem, lambda p: _stream(p.stream_generate_content("gemini-test", native)))
    assert len(fragments) == 5 and all("candidates" in f for f in fragments)  # one fragment per word
    assert fragments[-1]["candidates"][0]["finishReason"] == "STOP"
    assert (
        "".join(f["candidates"][0]["content"]["parts"][0]["text"] for f in fragments) == "gemini reply to: hello there"
    )
