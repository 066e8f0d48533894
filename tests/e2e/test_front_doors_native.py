"""Front doors, continued: native pass-through fidelity, /v1/responses on every provider kind, key scopes
answered in each API's own error shape, and audio refused where the routed model cannot take it.

Same gateway layout as test_front_doors.py (see tests/support/front_doors.py). When the front door and
the provider speak the same format the body must reach the provider untouched apart from the model
name, so these tests compare what the stand-in received with what the client sent, field for field.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.support.front_doors import (
    HTTP_KINDS,
    KINDS,
    REPLY_PREFIX,
    SECRETS,
    TOOL_ARGS,
    UPSTREAM_MODEL,
    FrontDoors,
    cost_micro,
    credits,
    expected_text,
    model_of,
    new_request_id,
)

PROMPT = "hello native doors"
RESPONSES_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": False,
    }
]
WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)).decode()
AUDIO_MESSAGES: list[Any] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is said here?"},
            {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
        ],
    }
]


def openai_client(fd: FrontDoors, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fd.gw.url}/v1", api_key=key or fd.key, max_retries=0)


def post(fd: FrontDoors, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{fd.gw.url}{path}", json=body, headers=headers, timeout=30)


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an SSE body; unnamed events are called "message"."""
    events, name = [], "message"
    for line in response.text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            name = "message"
    return events


# ------------------------------------------------------------------------------------ native pass-through fidelity


def test_chat_to_openai_passes_the_body_through_untouched(fd: FrontDoors) -> None:
    body = {
        "model": "via-openai",
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.3,
        "logit_bias": {"50256": -100},
        "vendor_knob": {"nested": [1, 2, {"deep": True}]},
        "max_completion_tokens": 256,
    }
    response = post(fd, "/v1/chat/completions", body, authorization=f"Bearer {fd.key}")
    assert response.status_code == 200, response.text
    assert fd.last_sent("openai")["json"] == {**body, "model": UPSTREAM_MODEL["openai"]}
    uncapped = {k: v for k, v in body.items() if k != "max_completion_tokens"}
    assert post(fd, "/v1/chat/completions", uncapped, authorization=f"Bearer {fd.key}").status_code == 200
    # no cap given: the cap its reservation assumed is sent, so the reservation is a real bound
    assert fd.last_sent("openai")["json"] == {
        **uncapped,
        "model": UPSTREAM_MODEL["openai"],
        "max_completion_tokens": 4096,
    }


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_translation_sends_only_what_the_target_api_knows(fd: FrontDoors, kind: str) -> None:
    """The other side of pass-through: translated, an unknown OpenAI field is dropped, not forwarded to a
    strict API that would refuse the whole call."""
    done = openai_client(fd).chat.completions.create(
        model=model_of(kind), messages=[{"role": "user", "content": PROMPT}], extra_body={"vendor_knob": 1}
    )
    assert done.choices[0].message.content == expected_text(kind, PROMPT)
    assert "vendor_knob" not in fd.last_sent(kind)["body"]


def test_messages_to_anthropic_passes_the_body_through_untouched(fd: FrontDoors) -> None:
    body = {
        "model": "via-anthropic",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
        "temperature": 0.5,
        "top_k": 5,
        "metadata": {"user_id": "user-42"},
        "stop_sequences": ["never said"],
        "service_tier": "auto",
        "thinking": {"type": "disabled"},
    }
    headers = {"x-api-key": fd.key, "anthropic-version": "2023-06-01"}
    response = post(fd, "/v1/messages", body, **headers)
    assert response.status_code == 200, response.text
    assert response.json()["content"] == [{"type": "text", "text": expected_text("anthropic", PROMPT)}]
    sent = fd.last_sent("anthropic")
    assert sent["json"] == {**body, "model": UPSTREAM_MODEL["anthropic"]}
    assert sent["headers"]["x-api-key"] == SECRETS["FD_ANTHROPIC_KEY"]
    streamed = post(fd, "/v1/messages", {**body, "stream": True}, **headers)
    assert streamed.status_code == 200
    names = [name for name, _ in sse_events(streamed)]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "ping" in names
    assert fd.last_sent("anthropic")["json"] == {**body, "model": UPSTREAM_MODEL["anthropic"], "stream": True}


def test_messages_unknown_field_reaches_anthropic_and_its_refusal_comes_back(fd: FrontDoors) -> None:
    """An unknown field survives pass-through: the strict stand-in sees it and refuses it, as the real API
    would, and the client gets that 400 in Anthropic's shape."""
    body = {
        "model": "via-anthropic",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": PROMPT}],
        "gateway_test_knob": {"a": 1},
    }
    response = post(fd, "/v1/messages", body, **{"x-api-key": fd.key})
    assert fd.last_sent("anthropic")["json"]["gateway_test_knob"] == {"a": 1}
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "gateway_test_knob" in error["error"]["message"]


def test_gemini_to_gemini_passes_the_body_through_untouched(fd: FrontDoors) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "generationConfig": {"temperature": 0.3, "seed": 7, "topK": 3, "maxOutputTokens": 200},
    }
    path = "/v1beta/models/via-gemini"
    response = post(fd, f"{path}:generateContent", body, **{"x-goog-api-key": fd.key})
    assert response.status_code == 200, response.text
    assert response.json()["candidates"][0]["content"]["parts"] == [{"text": expected_text("gemini", PROMPT)}]
    sent = fd.last_sent("gemini")
    assert sent["path"] == f"/v1beta/models/{UPSTREAM_MODEL['gemini']}:generateContent"
    assert sent["json"] == body
    streamed = httpx.post(
        f"{fd.gw.url}/api{path}:streamGenerateContent", params={"alt": "sse", "key": fd.key}, json=body, timeout=30
    )
    assert streamed.status_code == 200, streamed.text
    fragments = [data for _, data in sse_events(streamed)]
    assert "".join(f["candidates"][0]["content"]["parts"][0]["text"] for f in fragments) == expected_text(
        "gemini", PROMPT
    )
    sent = fd.last_sent("gemini")
    assert (sent["path"], sent["query"]) == (
        f"/v1beta/models/{UPSTREAM_MODEL['gemini']}:streamGenerateContent",
        "alt=sse",
    )
    assert sent["json"] == body


def test_gemini_stream_without_alt_sse_is_one_json_array(fd: FrontDoors) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    for kind in ("gemini", "anthropic"):
        response = post(
            fd, f"/v1beta/models/{model_of(kind)}:streamGenerateContent", body, **{"x-goog-api-key": fd.key}
        )
        assert response.status_code == 200, response.text
        fragments = response.json()
        assert isinstance(fragments, list) and fragments
        parts = [p for f in fragments for p in f["candidates"][0].get("content", {}).get("parts", [])]
        text = "".join(p.get("text", "") for p in parts)
        assert text == expected_text(kind, PROMPT)
        assert fragments[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_unknown_field_reaches_gemini_and_its_refusal_comes_back(fd: FrontDoors) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], "gatewayTestKnob": 1}
    response = post(fd, "/v1beta/models/via-gemini:generateContent", body, **{"x-goog-api-key": fd.key})
    assert fd.last_sent("gemini")["json"]["gatewayTestKnob"] == 1
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert "gatewayTestKnob" in error["message"]


def test_responses_to_openai_passes_the_body_through_untouched(fd: FrontDoors) -> None:
    body = {
        "model": "via-openai",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}],
        "instructions": "be brief",
        "metadata": {"ticket": "T-1"},
        "store": False,
        "vendor_knob": {"nested": [1, 2]},
        "max_output_tokens": 256,
    }
    response = post(fd, "/v1/responses", body, authorization=f"Bearer {fd.key}")
    assert response.status_code == 200, response.text
    assert fd.last_sent("openai")["path"] == "/v1/responses"
    assert fd.last_sent("openai")["json"] == {**body, "model": UPSTREAM_MODEL["openai"]}
    streamed = post(fd, "/v1/responses", {**body, "stream": True}, authorization=f"Bearer {fd.key}")
    assert streamed.status_code == 200
    assert sse_events(streamed)[-1][0] == "response.completed"
    assert fd.last_sent("openai")["json"] == {**body, "model": UPSTREAM_MODEL["openai"], "stream": True}


BROKEN = {  # door -> (provider kind that speaks it natively, stand-in behaviour that drops the stream mid-way)
    "chat": ("openai", {"fail_after_chunks": 3}),
    "messages": ("anthropic", {"fail_after_events": 5}),
    "gemini": ("gemini", {"fail_after_chunks": 3}),
    "responses": ("openai", {"fail_after_chunks": 6}),
}


def _stream_request(fd: FrontDoors, door: str, kind: str, request_id: str) -> httpx.Response:
    question, model = "one two three four five six", model_of(kind)
    bearer = {"authorization": f"Bearer {fd.key}", "x-request-id": request_id}
    if door == "chat":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": question}], "stream": True}
        return post(fd, "/v1/chat/completions", body, **bearer)
    if door == "messages":
        body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": question}], "stream": True}
        return post(fd, "/v1/messages", body, **{"x-api-key": fd.key, "x-request-id": request_id})
    if door == "gemini":
        path = f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
        body = {"contents": [{"parts": [{"text": question}]}]}
        return post(fd, path, body, **{"x-goog-api-key": fd.key, "x-request-id": request_id})
    return post(fd, "/v1/responses", {"model": model, "input": question, "stream": True}, **bearer)


def _delivered_text(door: str, events: list[tuple[str, dict[str, Any]]]) -> str:
    if door == "chat":
        return "".join((c.get("delta") or {}).get("content") or "" for _, d in events for c in d.get("choices") or [])
    if door == "messages":
        return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    if door == "gemini":
        parts = [p for _, d in events for c in d.get("candidates") or [] for p in c.get("content", {}).get("parts", [])]
        return "".join(p.get("text", "") for p in parts)
    return "".join(d["delta"] for n, d in events if n == "response.output_text.delta")


@pytest.mark.parametrize("door", BROKEN)
def test_native_stream_broken_mid_way_ends_with_an_error_and_bills_what_was_delivered(
    fd: FrontDoors, door: str
) -> None:
    """No clean finish reaches the client, and the row carries the input plus the output delivered,
    marked estimated (the provider's final usage never came)."""
    kind, behavior = BROKEN[door]
    up = fd.upstream(kind)
    assert up is not None
    up.set_behavior(**behavior, times=1)
    request_id = new_request_id()
    response = _stream_request(fd, door, kind, request_id)
    assert response.status_code == 200
    events = sse_events(response)
    last_name, last = events[-1]
    assert last_name == "error" or "error" in last, events[-1]  # each door's own error event
    assert "[DONE]" not in response.text and "message_stop" not in response.text
    assert "finishReason" not in response.text and "response.completed" not in response.text
    delivered = _delivered_text(door, events)
    assert delivered
    row = fd.gw.admin(f"/requests/{request_id}")
    assert row["status"] == "upstream_failed" and row["estimated"]
    assert row["output_tokens"] >= (len(delivered) + 3) // 4
    assert row["cost_micro"] == cost_micro(row["input_tokens"], row["output_tokens"]) > 0


# ------------------------------------------------------------------------------- openai SDK, /v1/responses


@pytest.mark.parametrize("kind", KINDS)
def test_responses_create(fd: FrontDoors, kind: str) -> None:
    raw = openai_client(fd).responses.with_raw_response.create(
        model=model_of(kind), input=PROMPT, instructions="be brief", max_output_tokens=256
    )
    response = raw.parse()
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == expected_text(kind, PROMPT)
    usage = response.usage
    assert usage is not None
    assert (usage.model_extra or {})["cost"] == pytest.approx(cost_micro(usage.input_tokens, usage.output_tokens) / 1e6)
    row = fd.assert_metered(
        raw.headers["x-request-id"],
        endpoint="responses",
        kind=kind,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
    )
    assert raw.headers["x-credits-used"] == credits(row["cost_micro"])
    if kind == "openai":
        sent = fd.last_sent(kind)
        assert sent["path"] == "/v1/responses" and sent["json"]["instructions"] == "be brief"
    elif kind == "anthropic":  # translated through chat: instructions became Anthropic's system
        sent = fd.last_sent(kind)
        assert sent["path"] == "/v1/messages" and sent["json"]["system"] == "be brief"
        assert sent["json"]["max_tokens"] == 256


@pytest.mark.parametrize("kind", KINDS)
def test_responses_stream(fd: FrontDoors, kind: str) -> None:
    request_id = new_request_id()
    with openai_client(fd).responses.stream(
        model=model_of(kind),
        input=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-request-id": request_id},
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == expected_text(kind, PROMPT) == final.output_text
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert final.usage is not None and (final.usage.model_extra or {})["cost"] > 0
    fd.assert_metered(
        request_id,
        endpoint="responses",
        kind=kind,
        stream=True,
        input_tokens=final.usage.input_tokens,
        output_tokens=final.usage.output_tokens,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_responses_tools_stream_and_round_trip(fd: FrontDoors, kind: str) -> None:
    client = openai_client(fd)
    with client.responses.stream(model=model_of(kind), input=PROMPT, tools=RESPONSES_TOOLS) as stream:
        streamed = stream.get_final_response()
    done = client.responses.create(model=model_of(kind), input=PROMPT, tools=RESPONSES_TOOLS)
    for response in (streamed, done):
        calls = [item for item in response.output if item.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", TOOL_ARGS[kind])]
    call = next(item for item in done.output if item.type == "function_call")
    follow_up: list[Any] = [
        {"role": "user", "content": PROMPT},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    answer = client.responses.create(model=model_of(kind), input=follow_up, tools=RESPONSES_TOOLS, tool_choice="none")
    assert answer.output_text.startswith(REPLY_PREFIX[kind])


# --------------------------------------------------------------------- scopes, in each front door's own error shape


@pytest.fixture(scope="module")
def scoped_key(front: FrontDoors) -> str:
    """A key of another project that may use only via-openai."""
    front.gw.cli_json("projects", "create", "front-doors-scoped")
    created = front.gw.cli_json("keys", "create", "--project", "front-doors-scoped", "--models", "via-openai")
    return str(created["key"])


def test_messages_refuses_a_model_outside_the_keys_scope_in_anthropic_shape(fd: FrontDoors, scoped_key: str) -> None:
    client = anthropic.Anthropic(base_url=fd.gw.url, api_key=scoped_key, max_retries=0)
    question: list[Any] = [{"role": "user", "content": PROMPT}]
    for kind in ("anthropic", "gemini"):
        with pytest.raises(anthropic.PermissionDeniedError) as info:
            client.messages.create(model=model_of(kind), max_tokens=50, messages=question)
        assert info.value.status_code == 403
        body: Any = info.value.body
        assert body["type"] == "error" and body["error"]["type"] == "permission_error"
        assert model_of(kind) in body["error"]["message"]
        with (
            pytest.raises(anthropic.PermissionDeniedError),
            client.messages.stream(model=model_of(kind), max_tokens=50, messages=question) as stream,
        ):
            stream.get_final_message()
    assert client.messages.create(model="via-openai", max_tokens=50, messages=question).content
    assert not fd.received("anthropic") and not fd.received("gemini")


def test_gemini_refuses_a_model_outside_the_keys_scope_in_google_shape(fd: FrontDoors, scoped_key: str) -> None:
    client = genai.Client(api_key=scoped_key, http_options=types.HttpOptions(base_url=fd.gw.url))
    for kind in ("gemini", "anthropic"):
        with pytest.raises(genai_errors.ClientError) as info:
            client.models.generate_content(model=model_of(kind), contents=PROMPT)
        assert info.value.code == 403 and info.value.status == "PERMISSION_DENIED"
        assert model_of(kind) in (info.value.message or "")
        with pytest.raises(genai_errors.ClientError) as streamed:
            list(client.models.generate_content_stream(model=model_of(kind), contents=PROMPT))
        assert streamed.value.code == 403
    assert client.models.generate_content(model="via-openai", contents=PROMPT).text == expected_text("openai", PROMPT)
    assert not fd.received("anthropic") and not fd.received("gemini")


def test_gemini_front_door_key_in_query_and_missing_key(fd: FrontDoors) -> None:
    body = {"contents": [{"parts": [{"text": PROMPT}]}]}
    ok = httpx.post(f"{fd.gw.url}/v1beta/models/via-mock:generateContent", params={"key": fd.key}, json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["candidates"][0]["content"]["parts"][0]["text"] == expected_text("mock", PROMPT)
    missing = httpx.post(f"{fd.gw.url}/v1beta/models/via-mock:generateContent", json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"


# ----------------------------------------------------------------------------------------------------- audio


@pytest.mark.parametrize("stream", [False, True])
def test_audio_to_an_anthropic_routed_model_is_400_audio_not_supported(fd: FrontDoors, stream: bool) -> None:
    request_id = new_request_id()
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(fd).chat.completions.create(
            model="via-anthropic", messages=AUDIO_MESSAGES, stream=stream, extra_headers={"x-request-id": request_id}
        )
    assert info.value.code == "audio_not_supported_by_model"
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert not fd.received("anthropic")
    row = fd.gw.admin(f"/requests/{request_id}")
    assert row["http_status"] == 400 and row["error_code"] == "audio_not_supported_by_model"
    assert row["cost_micro"] is None


def test_audio_to_a_gemini_routed_model_is_sent_as_inline_data(fd: FrontDoors) -> None:
    done = openai_client(fd).chat.completions.create(model="via-gemini", messages=AUDIO_MESSAGES)
    assert done.choices[0].message.content == expected_text("gemini", "what is said here?")
    parts = fd.last_sent("gemini")["json"]["contents"][0]["parts"]
    assert {"inlineData": {"mimeType": "audio/wav", "data": WAV}} in parts


# --------------------------------------------------------------------------- the stand-ins are as strict as the APIs


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_stand_ins_refuse_what_the_real_apis_refuse(fd: FrontDoors, kind: str) -> None:
    """Guards the guards: without these refusals, the translation tests above would prove little."""
    up = fd.upstream(kind)
    assert up is not None
    if kind == "anthropic":
        body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        no_version = httpx.post(f"{up.root_url}/v1/messages", json=body, headers={"x-api-key": "k"})
        assert no_version.status_code == 400 and "anthropic-version" in no_version.text
        no_max = {k: v for k, v in body.items() if k != "max_tokens"}
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        refused = httpx.post(f"{up.root_url}/v1/messages", json=no_max, headers=headers)
        assert refused.status_code == 400 and "max_tokens" in refused.json()["error"]["message"]
        # the gateway's own /v1/messages front door refuses it too, in the same shape
        gateway = post(fd, "/v1/messages", {**no_max, "model": "via-mock"}, **{"x-api-key": fd.key})
        assert gateway.status_code == 400 and gateway.json()["error"]["type"] == "invalid_request_error"
    elif kind == "gemini":
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
        no_key = httpx.post(f"{up.root_url}/v1beta/models/gemini-2.0-flash:generateContent", json=body)
        assert no_key.status_code == 403 and no_key.json()["error"]["status"] == "PERMISSION_DENIED"
    else:
        no_auth = httpx.post(f"{up.base_url}/responses", json={"model": "m", "input": "hi"})
        assert no_auth.status_code == 401
        client = openai.OpenAI(base_url=up.base_url, api_key="sk-test", max_retries=0)
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="m", input="hi", previous_response_id="resp_unknown")
        assert info.value.code == "previous_response_not_found"
