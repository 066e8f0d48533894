"""The Anthropic stand-in must satisfy the official SDK and refuse what the real API refuses,
or tests of the gateway's Anthropic translation prove nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from server.translate.anthropic import MessagesStreamToChat, chat_to_messages, messages_to_chat
from tests.upstreams.anthropic_upstream import (
    AnthropicUpstreamProcess,
    api_key,
    expected_reply,
    input_tokens,
    start_anthropic_process,
)

MESSAGES: list[Any] = [{"role": "user", "content": "hello there"}]
TOOLS: list[Any] = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def up() -> Iterator[AnthropicUpstreamProcess]:
    proc = start_anthropic_process()
    yield proc
    proc.stop()
    assert proc.proc.poll() is not None


@pytest.fixture()
def client(up: AnthropicUpstreamProcess) -> anthropic.Anthropic:
    up.clear()
    return anthropic.Anthropic(base_url=up.base_url, api_key="sk-ant-test", max_retries=0)


def _post(up: AnthropicUpstreamProcess, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{up.base_url}/v1/messages", json=body, headers=HEADERS if headers is None else headers)


def test_base_url_has_no_v1(up: AnthropicUpstreamProcess) -> None:
    assert up.base_url == f"http://127.0.0.1:{up.port}"


def test_create_answers_deterministically(client: anthropic.Anthropic, up: AnthropicUpstreamProcess) -> None:
    body = {"model": "claude-test-model", "max_tokens": 100, "system": "be brief", "messages": MESSAGES}
    msg = client.messages.create(**body)
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert msg.model == "claude-test-model" and msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == expected_reply(MESSAGES) == "anthropic reply to: hello there"  # type: ignore[union-attr]
    assert msg.usage.input_tokens == input_tokens(body) and msg.usage.output_tokens == 5
    assert msg.usage.cache_read_input_tokens == 0 and msg.usage.cache_creation_input_tokens == 0
    (seen,) = up.received()
    assert seen["path"] == "/v1/messages" and api_key(seen["headers"]) == "sk-ant-test"
    assert seen["headers"]["anthropic-version"] and seen["json"]["system"] == "be brief"


def test_tools_give_a_tool_use_reply(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model="m", max_tokens=50, messages=MESSAGES, tools=TOOLS)
    assert msg.stop_reason == "tool_use" and msg.content[0].type == "tool_use"
    assert msg.content[0].name == "get_weather" and msg.content[0].input == {"x": 1}
    assert msg.content[0].id.startswith("toolu_")
    none = client.messages.create(
        model="m", max_tokens=50, messages=MESSAGES, tools=TOOLS, tool_choice={"type": "none"}
    )
    assert none.stop_reason == "end_turn" and none.content[0].type == "text"


def test_stop_sequences_and_max_tokens_cut_the_reply(client: anthropic.Anthropic) -> None:
    stopped = client.messages.create(model="m", max_tokens=50, messages=MESSAGES, stop_sequences=[" there"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == " there"
    assert stopped.content[0].text == "anthropic reply to: hello"  # type: ignore[union-attr]
    short = client.messages.create(model="m", max_tokens=2, messages=MESSAGES)
    assert short.stop_reason == "max_tokens" and short.content[0].text == "anthropic reply"  # type: ignore[union-attr]
    assert short.usage.output_tokens == 2


def test_a_tool_result_conversation_is_accepted(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [
        *MESSAGES,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    msg = client.messages.create(model="m", max_tokens=50, messages=messages, tools=TOOLS, tool_choice={"type": "none"})
    assert msg.content[0].text == "anthropic reply to: sunny"  # type: ignore[union-attr]


def test_stream_with_tools(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="m", max_tokens=50, messages=MESSAGES, tools=TOOLS) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "input_json" in kinds and kinds[-1] == "message_stop"
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    assert final.content[0].input == {"x": 1} and final.usage.output_tokens == 5


def test_stream_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="m", max_tokens=50, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "anthropic reply to: hello there" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5 and final.usage.input_tokens > 0


def test_stream_is_the_exact_sse_sequence(up: AnthropicUpstreamProcess) -> None:
    body = {"model": "m", "max_tokens": 50, "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{up.base_url}/v1/messages", json=body, headers=HEADERS) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    frames = [f.split("\n") for f in raw.split("\n\n") if f]
    names = [f[0].removeprefix("event: ") for f in frames]
    assert all(json.loads(f[1].removeprefix("data: "))["type"] == n for f, n in zip(frames, names, strict=True))
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": MESSAGES, "max_tokens": 5}, "model: Field required"),
        ({"model": "m", "messages": MESSAGES}, "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": [*MESSAGES, *MESSAGES]}, "roles must alternate"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "hi"}]}, "first message"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}, "'video'"),
        ({"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream_options": {}}, "stream_options: Extra"),
        ({"model": "m", "max_tokens": 5, "messages": MESSAGES, "temperature": 1.5}, "temperature"),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}],
            },
            "unexpected `tool_use_id`",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    *MESSAGES,
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": "never mind"},
                ],
            },
            "without `tool_result`",
        ),
    ],
)
def test_invalid_requests_get_400(up: AnthropicUpstreamProcess, body: dict[str, Any], fragment: str) -> None:
    resp = _post(up, body)
    assert resp.status_code == 400, resp.text
    payload = resp.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert fragment in payload["error"]["message"]


def test_sdk_sees_invalid_requests_as_bad_request(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="m", max_tokens=5, messages=[*MESSAGES, *MESSAGES])
    assert err.value.status_code == 400 and "alternate" in str(err.value)


def test_missing_anthropic_version_is_refused(up: AnthropicUpstreamProcess) -> None:
    resp = _post(up, {"model": "m", "max_tokens": 5, "messages": MESSAGES}, {"x-api-key": "sk-ant-test"})
    assert resp.status_code == 400
    assert resp.json()["error"] == {"type": "invalid_request_error", "message": "anthropic-version: header is required"}


def test_missing_api_key_is_refused(up: AnthropicUpstreamProcess) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES}
    resp = _post(up, body, {"anthropic-version": "2023-06-01"})
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error"
    assert _post(up, body, {"anthropic-version": "2023-06-01", "authorization": "Basic abc"}).status_code == 401
    # the key may come as x-api-key (the documented header) or as a Bearer token (what SDK 2.x sends)
    assert _post(up, body, {"anthropic-version": "2023-06-01", "x-api-key": "k"}).status_code == 200
    assert _post(up, body, {"anthropic-version": "2023-06-01", "authorization": "Bearer k"}).status_code == 200


def test_behavior_overloaded_then_recovers(client: anthropic.Anthropic, up: AnthropicUpstreamProcess) -> None:
    up.set_behavior(status=529, times=1)
    with pytest.raises(anthropic.InternalServerError) as err:
        client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert err.value.status_code == 529 and err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert client.messages.create(model="m", max_tokens=5, messages=MESSAGES).stop_reason == "end_turn"


def test_behavior_500_and_429(client: anthropic.Anthropic, up: AnthropicUpstreamProcess) -> None:
    up.set_behavior(status=500, times=1)
    with pytest.raises(anthropic.InternalServerError) as err500:
        client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert err500.value.status_code == 500 and err500.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    up.set_behavior(status=429)
    with pytest.raises(anthropic.RateLimitError) as err429:
        client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert err429.value.response.headers["retry-after"] == "1"
    assert err429.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_behavior_delay(client: anthropic.Anthropic, up: AnthropicUpstreamProcess) -> None:
    up.set_behavior(delay_ms=300, times=1)
    started = time.monotonic()
    client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert time.monotonic() - started >= 0.3


def test_behavior_fail_after_events_drops_the_stream(up: AnthropicUpstreamProcess) -> None:
    up.clear()
    up.set_behavior(fail_after_events=4)
    body = {"model": "m", "max_tokens": 50, "messages": MESSAGES, "stream": True}
    seen = ""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{up.base_url}/v1/messages", json=body, headers=HEADERS) as resp,
    ):
        for text in resp.iter_text():
            seen += text
    assert "event: content_block_delta" in seen and "message_stop" not in seen


def test_behavior_error_event_mid_stream(client: anthropic.Anthropic, up: AnthropicUpstreamProcess) -> None:
    up.set_behavior(error_after_events=4)
    with (
        pytest.raises(anthropic.APIStatusError) as err,
        client.messages.stream(model="m", max_tokens=50, messages=MESSAGES) as stream,
    ):
        for _ in stream:
            pass
    assert "overloaded_error" in str(err.value)


def test_translated_openai_request_is_served_and_translated_back(up: AnthropicUpstreamProcess) -> None:
    """The gateway's direction A against the strict stand-in, non-stream and stream."""
    up.clear()
    chat = {
        "model": "public",
        "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        "stop": ["zzz"],
        "max_tokens": 50,
    }
    resp = _post(up, chat_to_messages(chat, "claude-x", 1024))
    assert resp.status_code == 200, resp.text
    completion = ChatCompletion.model_validate(messages_to_chat(resp.json(), "public"))
    assert completion.choices[0].message.content == "anthropic reply to: hello there"
    assert (
        completion.choices[0].finish_reason == "stop" and completion.usage and completion.usage.completion_tokens == 5
    )
    body = chat_to_messages(chat | {"stream": True}, "claude-x", 1024)
    translator = MessagesStreamToChat("public")
    chunks = []
    with httpx.stream("POST", f"{up.base_url}/v1/messages", json=body, headers=HEADERS) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                chunks += translator.feed(json.loads(line[6:]))
    assert translator.done
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) == "anthropic reply to: hello there"
    assert parsed[-1].usage and parsed[-1].usage.completion_tokens == 5
