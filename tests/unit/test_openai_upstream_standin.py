"""The OpenAI stand-in upstream must parse with the official SDK, or e2e tests prove nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.upstreams.openai_upstream import (
    UpstreamProcess,
    chat_prompt_tokens,
    expected_embedding,
    start_upstream_process,
)

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamProcess]:
    proc = start_upstream_process()
    yield proc
    proc.stop()
    assert proc.proc.poll() is not None


@pytest.fixture()
def client(up: UpstreamProcess) -> openai.OpenAI:
    up.clear()
    return openai.OpenAI(base_url=up.base_url, api_key="sk-test", max_retries=0)


def test_chat_non_stream(client: openai.OpenAI, up: UpstreamProcess) -> None:
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-4o-mini"
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == "upstream reply to: hello there"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == chat_prompt_tokens(MESSAGES)
    assert resp.usage.completion_tokens == 5
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 5
    assert resp.usage.prompt_tokens_details and resp.usage.prompt_tokens_details.cached_tokens == 0
    assert resp.usage.completion_tokens_details and resp.usage.completion_tokens_details.reasoning_tokens == 0


def test_content_parts_are_joined(client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": parts}])
    assert resp.choices[0].message.content == "upstream reply to: a b"


def test_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "upstream reply to: hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(chunks) == 1 + 5 + 1  # role chunk, one per word, finish chunk


def test_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    *body, last = chunks
    assert all(c.usage is None and len(c.choices) == 1 for c in body)
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 5


def test_stream_is_raw_sse(up: UpstreamProcess) -> None:
    payload = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    r = httpx.post(f"{up.base_url}/chat/completions", json=payload, headers={"Authorization": "Bearer x"})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = r.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert all("usage" in json.loads(e[6:]) for e in events[:-2])


def test_tools_give_tool_calls(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)  # type: ignore[arg-type]
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.id.startswith("call_") and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"x": 1}  # type: ignore[union-attr]
    assert resp.usage is not None and resp.usage.completion_tokens == 5
    none = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice="none")  # type: ignore[arg-type]
    assert none.choices[0].message.tool_calls is None


def test_streamed_tool_calls_accumulate(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as stream:  # type: ignore[arg-type]
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and call.function.arguments == '{"x": 1}'
    assert final.choices[0].finish_reason == "tool_calls"


def test_embeddings_base64_default(client: openai.OpenAI, up: UpstreamProcess) -> None:
    resp = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=12)
    assert [len(d.embedding) for d in resp.data] == [12, 12]
    assert resp.data[0].embedding == expected_embedding("a", 12)
    assert all(-1 <= x <= 1 for x in resp.data[1].embedding)
    assert up.received()[-1]["json"]["encoding_format"] == "base64"
    floats = client.embeddings.create(model="e", input="a", encoding_format="float")
    assert floats.data[0].embedding == expected_embedding("a")
    tokens = client.embeddings.create(model="e", input=[[1, 2], [3]])
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 3


def test_models_and_auth(client: openai.OpenAI, up: UpstreamProcess) -> None:
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    r = httpx.get(f"{up.base_url}/models")
    err = r.json()["error"]
    assert r.status_code == 401 and err["code"] == "invalid_api_key" and err["param"] is None


def test_invalid_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m", messages=[])
    assert exc.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_behaviors(client: openai.OpenAI, up: UpstreamProcess) -> None:
    up.set_behavior(status=500, times=1)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices  # reverted after 1
    up.set_behavior(status=429)
    r = httpx.post(f"{up.base_url}/embeddings", json={"model": "e"}, headers={"Authorization": "Bearer"})
    assert r.status_code == 401  # auth is checked before behaviour
    r = httpx.post(f"{up.base_url}/embeddings", json={"model": "e"}, headers={"Authorization": "Bearer x"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    up.set_behavior(omit_usage=True)
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.usage is None and c.choices for c in chunks)


def test_fail_after_chunks_drops_stream(client: openai.OpenAI, up: UpstreamProcess) -> None:
    up.set_behavior(fail_after_chunks=2)
    seen = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIError)):
        for c in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            seen.append(c)
    assert len(seen) == 2


def test_received_records_body(client: openai.OpenAI, up: UpstreamProcess) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.5)
    [rec] = up.received()
    assert rec["method"] == "POST" and rec["path"] == "/v1/chat/completions"
    assert rec["headers"]["authorization"] == "Bearer sk-test"
    assert rec["json"] == {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.5}
    assert json.loads(rec["body"]) == rec["json"]
    up.clear()
    assert up.received() == []
