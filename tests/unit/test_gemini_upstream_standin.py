"""The Gemini stand-in upstream must parse with the official google-genai SDK, or e2e tests prove nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.genai.types import HttpOptions

from server.translate.gemini import chat_to_generate_content, embeddings_to_batch_embed, generate_content_to_chat
from tests.upstreams.gemini_upstream import (
    INVALID_KEY,
    GeminiUpstreamProcess,
    expected_embedding,
    expected_reply,
    prompt_tokens,
    start_gemini_upstream,
)

MODEL = "gemini-2.0-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}),
)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


@pytest.fixture(scope="module")
def up() -> Iterator[GeminiUpstreamProcess]:
    proc = start_gemini_upstream()
    yield proc
    proc.stop()
    assert proc.proc.poll() is not None


@pytest.fixture()
def client(up: GeminiUpstreamProcess) -> genai.Client:
    up.clear()
    return genai.Client(api_key="test-key", http_options=HttpOptions(base_url=up.root_url))


def post(up: GeminiUpstreamProcess, method: str, body: Any, key: str | None = "k", query: str = "") -> httpx.Response:
    headers = {"x-goog-api-key": key} if key else {}
    return httpx.post(f"{up.base_url}/models/{MODEL}:{method}{query}", json=body, headers=headers)


def test_generate_content(client: genai.Client, up: GeminiUpstreamProcess) -> None:
    config = types.GenerateContentConfig(system_instruction="be brief", temperature=0.1)
    resp = client.models.generate_content(model=MODEL, contents="hello there", config=config)
    assert resp.text == "gemini reply to: hello there"
    cand = resp.candidates[0]  # type: ignore[index]
    assert cand.finish_reason == types.FinishReason.STOP and cand.content and cand.content.role == "model"
    [rec] = up.received()
    assert rec["headers"]["x-goog-api-key"] == "test-key"
    assert rec["path"] == f"/v1/models/{MODEL}:generateContent"  # google-genai 3.x defaults to v1
    assert resp.usage_metadata and resp.usage_metadata.prompt_token_count == prompt_tokens(rec["json"])
    assert (
        resp.usage_metadata.candidates_token_count == 5
        and resp.usage_metadata.total_token_count == resp.usage_metadata.prompt_token_count + 5
    )
    assert resp.model_version == MODEL and resp.response_id


def test_v1beta_and_multi_turn(up: GeminiUpstreamProcess) -> None:
    up.clear()
    client = genai.Client(api_key="k", http_options=HttpOptions(base_url=up.root_url, api_version="v1beta"))
    contents = [
        types.Content(role="user", parts=[types.Part(text="first")]),
        types.Content(role="model", parts=[types.Part(text="ok")]),
        types.Content(role="user", parts=[types.Part(text="second"), types.Part(text="part")]),
    ]
    resp = client.models.generate_content(model=MODEL, contents=contents)
    assert resp.text == "gemini reply to: second part"
    assert up.received()[-1]["path"] == f"/v1beta/models/{MODEL}:generateContent"


def test_stream_sse(client: genai.Client, up: GeminiUpstreamProcess) -> None:
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hello there"))
    assert "".join(c.text or "" for c in chunks) == "gemini reply to: hello there"
    assert len(chunks) == 5 and all(c.candidates[0].finish_reason is None for c in chunks[:-1])  # type: ignore[index]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.candidates_token_count == 5
    assert up.received()[-1]["query"] == "alt=sse"
    raw = post(up, "streamGenerateContent", {"contents": [{"parts": [{"text": "a b"}]}]}, query="?alt=sse")
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = raw.text.split("\r\n\r\n")
    assert events[-1] == "" and all(e.startswith("data: ") for e in events[:-1]) and len(events) == 6


def test_stream_without_sse_is_a_json_array(up: GeminiUpstreamProcess) -> None:
    raw = post(up, "streamGenerateContent", {"contents": [{"role": "user", "parts": [{"text": "x"}]}]})
    fragments = raw.json()
    assert isinstance(fragments, list) and len(fragments) == 4
    assert "".join(f["candidates"][0]["content"]["parts"][0]["text"] for f in fragments) == "gemini reply to: x"


def test_function_calling(client: genai.Client, up: GeminiUpstreamProcess) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AFC
    )
    resp = client.models.generate_content(model=MODEL, contents="weather?", config=config)
    assert [(c.name, c.args) for c in resp.function_calls or []] == [("get_weather", {"x": 1})]
    streamed = list(client.models.generate_content_stream(model=MODEL, contents="weather?", config=config))
    assert len(streamed) == 1 and streamed[0].function_calls and streamed[0].function_calls[0].name == "get_weather"
    none = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.NONE)
    )
    plain = client.models.generate_content(
        model=MODEL, contents="weather?", config=config.model_copy(update={"tool_config": none})
    )
    assert plain.function_calls is None and plain.text == "gemini reply to: weather?"


def test_automatic_function_calling_round_trip(client: genai.Client, up: GeminiUpstreamProcess) -> None:
    seen: list[int] = []

    def lookup(x: int) -> dict[str, Any]:
        """Look something up."""
        seen.append(x)
        return {"answer": x * 2}

    resp = client.models.generate_content(
        model=MODEL, contents="use the tool", config=types.GenerateContentConfig(tools=[lookup])
    )
    assert seen == [1] and resp.text == "gemini reply to: use the tool"  # a function result gets a text answer
    second = up.received()[-1]["json"]["contents"]
    assert second[1]["parts"][0]["functionCall"]["name"] == "lookup"
    assert second[2]["parts"][0]["functionResponse"]["response"] == {"result": {"answer": 2}}


def test_embed_content(client: genai.Client, up: GeminiUpstreamProcess) -> None:
    resp = client.models.embed_content(
        model="text-embedding-004", contents=["a", "b"], config=types.EmbedContentConfig(output_dimensionality=12)
    )
    assert [e.values for e in resp.embeddings or []] == [expected_embedding("a", 12), expected_embedding("b", 12)]
    one = client.models.embed_content(model="text-embedding-004", contents="a")
    assert one.embeddings and one.embeddings[0].values == expected_embedding("a", 8)
    assert up.received()[-1]["path"].endswith("text-embedding-004:batchEmbedContents")
    single = httpx.post(
        f"{up.base_url}/models/text-embedding-004:embedContent?key=k", json={"content": {"parts": [{"text": "a"}]}}
    )
    assert single.json() == {"embedding": {"values": expected_embedding("a", 8)}}
    wrong = httpx.post(
        f"{up.base_url}/models/text-embedding-004:batchEmbedContents?key=k",
        json={"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]},
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_auth(up: GeminiUpstreamProcess) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    missing = post(up, "generateContent", body, key=None)
    err = missing.json()["error"]
    assert missing.status_code == 403 and err["status"] == "PERMISSION_DENIED" and err["code"] == 403
    assert "unregistered callers" in err["message"]
    bearer = httpx.post(
        f"{up.base_url}/models/{MODEL}:generateContent", json=body, headers={"authorization": "Bearer t"}
    )
    assert bearer.status_code == 401 and bearer.json()["error"]["status"] == "UNAUTHENTICATED"
    invalid = post(up, "generateContent", body, key=INVALID_KEY)
    assert invalid.status_code == 400 and invalid.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert post(up, "generateContent", body, key=None, query="?key=abc").status_code == 200
    bad_client = genai.Client(api_key=INVALID_KEY, http_options=HttpOptions(base_url=up.root_url))
    with pytest.raises(genai_errors.ClientError) as exc:
        bad_client.models.generate_content(model=MODEL, contents="x")
    assert exc.value.code == 400


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({"contents": [{"parts": [{"text": "x", "bogus": 1}]}]}, 'Unknown name "bogus"'),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxTokens": 3}}, 'Unknown name "maxTokens"'),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"parts": [{"text": "x", "inlineData": {"mimeType": "image/png", "data": "AA=="}}]}]}, "oneof"),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"a": {"type": "string"}},
                                },
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
            },
            "should be non-empty for OBJECT type",
        ),
        (
            {"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "function response turn comes immediately after a function call turn",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseSchema": {"type": "STRING"}}},
            "response_mime_type",
        ),
    ],
)
def test_strict_validation(up: GeminiUpstreamProcess, body: dict[str, Any], needle: str) -> None:
    r = post(up, "generateContent", body)
    err = r.json()["error"]
    assert r.status_code == 400 and err["status"] == "INVALID_ARGUMENT" and needle in err["message"], err


def test_sdk_raises_on_invalid(client: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as exc:
        client.models.generate_content(
            model=MODEL, contents=[types.Content(role="assistant", parts=[types.Part(text="x")])]
        )
    assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT" and "valid role" in str(exc.value.message)


def test_snake_case_is_accepted_like_the_real_api(up: GeminiUpstreamProcess) -> None:
    body = {
        "system_instruction": {"parts": [{"text": "s"}]},
        "contents": [
            {"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "AA=="}}, {"text": "hi"}]}
        ],
        "generation_config": {"max_output_tokens": 2},
    }
    r = post(up, "generateContent", body)
    assert r.status_code == 200
    cand = r.json()["candidates"][0]
    assert cand["finishReason"] == "MAX_TOKENS" and cand["content"]["parts"][0]["text"] == "gemini reply"


def test_behaviors(client: genai.Client, up: GeminiUpstreamProcess) -> None:
    up.set_behavior(status=500, times=1)
    with pytest.raises(genai_errors.ServerError) as exc:
        client.models.generate_content(model=MODEL, contents="x")
    assert exc.value.code == 500 and exc.value.status == "INTERNAL"
    assert client.models.generate_content(model=MODEL, contents="x").text  # reverted after one
    up.set_behavior(status=429)
    r = post(up, "generateContent", {"contents": [{"parts": [{"text": "x"}]}]}, key=None)
    assert r.status_code == 403  # auth is checked before behaviour
    r = post(up, "generateContent", {"contents": [{"parts": [{"text": "x"}]}]})
    err = r.json()["error"]
    assert r.status_code == 429 and err["status"] == "RESOURCE_EXHAUSTED" and err["details"][0]["retryDelay"] == "1s"
    up.set_behavior(status=503)
    with pytest.raises(genai_errors.ServerError) as server_exc:
        client.models.generate_content(model=MODEL, contents="x")
    assert server_exc.value.code == 503 and server_exc.value.status == "UNAVAILABLE"
    up.set_behavior(omit_usage=True)
    assert client.models.generate_content(model=MODEL, contents="x").usage_metadata is None
    up.set_behavior(delay_ms=300)
    url = f"{up.base_url}/models/{MODEL}:generateContent?key=k"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json={"contents": [{"parts": [{"text": "x"}]}]}, timeout=0.1)
    up.clear()


def test_fail_after_chunks_breaks_stream(client: genai.Client, up: GeminiUpstreamProcess) -> None:
    up.set_behavior(fail_after_chunks=2)
    seen = []
    with pytest.raises((httpx.RemoteProtocolError, httpx2.RemoteProtocolError, genai_errors.APIError)):
        for c in client.models.generate_content_stream(model=MODEL, contents="hello there"):
            seen.append(c)
    assert len(seen) == 2


def test_gateway_translation_against_standin(up: GeminiUpstreamProcess) -> None:
    """Direction A end to end: an OpenAI chat body translated, sent, and the reply translated back."""
    up.clear()
    chat = {
        "model": MODEL,
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "none",
        "response_format": {"type": "json_object"},
    }
    r = post(up, "generateContent", chat_to_generate_content(chat))
    assert r.status_code == 200, r.text
    out = generate_content_to_chat(r.json(), MODEL)
    assert json.loads(out["choices"][0]["message"]["content"]) == {
        "reply": expected_reply([{"parts": [{"text": "hi"}]}])
    }
    embed = httpx.post(
        f"{up.base_url}/models/text-embedding-004:batchEmbedContents?key=k",
        json=embeddings_to_batch_embed({"input": ["a"], "dimensions": 3}, "text-embedding-004"),
    )
    assert embed.json() == {"embeddings": [{"values": expected_embedding("a", 3)}]}
