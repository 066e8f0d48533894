"""Every front door through its own official SDK, against every provider kind, with a real gateway process.

The openai SDK (/v1/chat/completions), the anthropic SDK (/v1/messages) and the google-genai SDK
(models/{model}:generateContent and :streamGenerateContent) each call `via-openai`, `via-anthropic`,
`via-gemini` and `via-mock`: native pass-through where the provider speaks the front door's format,
translation through OpenAI chat otherwise. The Anthropic and Gemini stand-ins validate requests as
strictly as the real APIs, so a translation slip is a failed call, not a quiet pass. Every call must
leave a request row with exact usage and its cost, the same on every door (see `assert_metered`).
Pass-through fidelity, /v1/responses, scopes and audio are in test_front_doors_native.py.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from tests.support.front_doors import (
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

PROMPT = "hello front doors"
MESSAGES: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA}}
]
ANTHROPIC_TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}]
GENAI_TOOLS = [
    types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="Weather",
                parameters=types.Schema(
                    type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
                ),
            )
        ]
    )
]

pytestmark = pytest.mark.parametrize("kind", KINDS)


def openai_client(fd: FrontDoors) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fd.gw.url}/v1", api_key=fd.key, max_retries=0)


def anthropic_client(fd: FrontDoors) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fd.gw.url, api_key=fd.key, max_retries=0)


def genai_client(fd: FrontDoors) -> genai.Client:
    """The SDK's default api_version is v1, so it calls /v1/models/{model}:generateContent."""
    return genai.Client(api_key=fd.key, http_options=types.HttpOptions(base_url=fd.gw.url))


def genai_config(request_id: str, **fields: Any) -> types.GenerateContentConfig:
    headers = {"x-request-id": request_id}
    return types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers), **fields)


def assert_upstream_saw_a_valid_call(fd: FrontDoors, kind: str, *, stream: bool) -> None:
    """The provider's own credentials and headers went upstream; the client's gateway key never did."""
    if kind == "mock":
        return
    sent = fd.last_sent(kind)
    assert fd.key not in json.dumps(sent)
    if kind == "openai":
        assert sent["headers"]["authorization"] == f"Bearer {SECRETS['FD_OPENAI_KEY']}"
        assert sent["json"]["model"] == UPSTREAM_MODEL[kind]
    elif kind == "anthropic":
        assert sent["path"] == "/v1/messages"
        assert sent["headers"]["x-api-key"] == SECRETS["FD_ANTHROPIC_KEY"]
        assert sent["headers"]["anthropic-version"] == "2023-06-01"
        assert sent["json"]["model"] == UPSTREAM_MODEL[kind]
        assert isinstance(sent["json"]["max_tokens"], int)
        assert bool(sent["json"].get("stream")) is stream
    else:
        method = "streamGenerateContent" if stream else "generateContent"
        assert sent["path"] == f"/v1beta/models/{UPSTREAM_MODEL[kind]}:{method}"
        assert sent["headers"]["x-goog-api-key"] == SECRETS["FD_GEMINI_KEY"]
        assert "key=" not in sent["query"]  # the provider key never goes in a URL


# ------------------------------------------------------------------------------ openai SDK, /v1/chat/completions


def test_openai_sdk_chat(fd: FrontDoors, kind: str) -> None:
    raw = openai_client(fd).chat.completions.with_raw_response.create(model=model_of(kind), messages=MESSAGES)
    done = raw.parse()
    assert done.choices[0].message.content == expected_text(kind, PROMPT)
    assert done.choices[0].finish_reason == "stop"
    usage = done.usage
    assert usage is not None
    assert (usage.model_extra or {})["cost"] == pytest.approx(
        cost_micro(usage.prompt_tokens, usage.completion_tokens) / 1e6
    )
    assert raw.headers["x-model-used"] == UPSTREAM_MODEL[kind]
    row = fd.assert_metered(
        raw.headers["x-request-id"],
        endpoint="chat",
        kind=kind,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
    )
    assert raw.headers["x-credits-used"] == credits(row["cost_micro"])
    assert_upstream_saw_a_valid_call(fd, kind, stream=False)
    if kind == "anthropic":  # the OpenAI system message is Anthropic's top-level system; max_tokens defaulted
        sent = fd.last_sent(kind)["json"]
        assert sent["system"] == "be brief" and sent["max_tokens"] == 4096
        assert [m["role"] for m in sent["messages"]] == ["user"]


def test_openai_sdk_chat_stream(fd: FrontDoors, kind: str) -> None:
    request_id = new_request_id()
    chunks = list(
        openai_client(fd).chat.completions.create(
            model=model_of(kind),
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-request-id": request_id},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text(kind, PROMPT)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.model_extra or {})["cost"] > 0
    fd.assert_metered(
        request_id,
        endpoint="chat",
        kind=kind,
        stream=True,
        input_tokens=last.usage.prompt_tokens,
        output_tokens=last.usage.completion_tokens,
    )
    assert_upstream_saw_a_valid_call(fd, kind, stream=True)


def test_openai_sdk_tools_round_trip(fd: FrontDoors, kind: str) -> None:
    client = openai_client(fd)
    first = client.chat.completions.create(model=model_of(kind), messages=MESSAGES, tools=CHAT_TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_ARGS[kind]
    assistant = {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]}
    follow_up = [*MESSAGES, assistant, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(
        model=model_of(kind), messages=follow_up, tools=CHAT_TOOLS, tool_choice="none"
    )
    assert second.choices[0].finish_reason == "stop"
    assert (second.choices[0].message.content or "").startswith(REPLY_PREFIX[kind])
    if kind == "anthropic":  # the strict stand-in got a tool_use and its tool_result, ids matching
        sent = fd.last_sent(kind)["json"]["messages"]
        use = next(b for b in sent[1]["content"] if b["type"] == "tool_use")
        assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"}


def test_openai_sdk_tools_stream(fd: FrontDoors, kind: str) -> None:
    request_id = new_request_id()
    with openai_client(fd).chat.completions.stream(
        model=model_of(kind),
        messages=MESSAGES,
        tools=CHAT_TOOLS,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": request_id},
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_ARGS[kind]
    assert final.usage is not None
    fd.assert_metered(
        request_id,
        endpoint="chat",
        kind=kind,
        stream=True,
        input_tokens=final.usage.prompt_tokens,
        output_tokens=final.usage.completion_tokens,
    )


# ------------------------------------------------------------------------------------ anthropic SDK, /v1/messages


def test_anthropic_sdk_messages_create(fd: FrontDoors, kind: str) -> None:
    raw = anthropic_client(fd).messages.with_raw_response.create(
        model=model_of(kind), max_tokens=256, system="be brief", messages=[{"role": "user", "content": PROMPT}]
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == expected_text(kind, PROMPT)  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert raw.headers["x-model-used"] == UPSTREAM_MODEL[kind]
    row = fd.assert_metered(
        raw.headers["x-request-id"],
        endpoint="messages",
        kind=kind,
        input_tokens=message.usage.input_tokens,
        output_tokens=message.usage.output_tokens,
    )
    assert raw.headers["x-credits-used"] == credits(row["cost_micro"])
    assert_upstream_saw_a_valid_call(fd, kind, stream=False)
    if kind == "anthropic":
        assert fd.last_sent(kind)["json"]["max_tokens"] == 256


def test_anthropic_sdk_messages_stream(fd: FrontDoors, kind: str) -> None:
    request_id = new_request_id()
    with anthropic_client(fd).messages.stream(
        model=model_of(kind),
        max_tokens=256,
        system="be brief",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-request-id": request_id},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected_text(kind, PROMPT)
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == text  # type: ignore[union-attr]
    fd.assert_metered(
        request_id,
        endpoint="messages",
        kind=kind,
        stream=True,
        input_tokens=final.usage.input_tokens,
        output_tokens=final.usage.output_tokens,
    )
    assert_upstream_saw_a_valid_call(fd, kind, stream=True)


def test_anthropic_sdk_tools_round_trip(fd: FrontDoors, kind: str) -> None:
    client = anthropic_client(fd)
    question: dict[str, Any] = {"role": "user", "content": PROMPT}
    first = client.messages.create(model=model_of(kind), max_tokens=256, messages=[question], tools=ANTHROPIC_TOOLS)
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == TOOL_ARGS[kind]
    assistant = [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]
    result = [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]
    second = client.messages.create(
        model=model_of(kind),
        max_tokens=256,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "none"},
        messages=[question, {"role": "assistant", "content": assistant}, {"role": "user", "content": result}],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text.startswith(REPLY_PREFIX[kind])  # type: ignore[union-attr]


def test_anthropic_sdk_tools_stream(fd: FrontDoors, kind: str) -> None:
    request_id = new_request_id()
    with anthropic_client(fd).messages.stream(
        model=model_of(kind),
        max_tokens=256,
        messages=[{"role": "user", "content": PROMPT}],
        tools=ANTHROPIC_TOOLS,
        extra_headers={"x-request-id": request_id},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == TOOL_ARGS[kind]
    fd.assert_metered(
        request_id,
        endpoint="messages",
        kind=kind,
        stream=True,
        input_tokens=final.usage.input_tokens,
        output_tokens=final.usage.output_tokens,
    )


# ------------------------------------------------------------------------- google-genai SDK, Gemini front door


def test_genai_generate_content(fd: FrontDoors, kind: str) -> None:
    request_id, client = new_request_id(), genai_client(fd)  # keep the client: dropping it closes its connections
    response = client.models.generate_content(
        model=model_of(kind),
        contents=PROMPT,
        config=genai_config(request_id, system_instruction="be brief", max_output_tokens=256),
    )
    assert response.text == expected_text(kind, PROMPT)
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    meta = response.usage_metadata
    assert meta is not None and meta.prompt_token_count and meta.candidates_token_count
    row = fd.assert_metered(
        request_id,
        endpoint="gemini",
        kind=kind,
        input_tokens=meta.prompt_token_count,
        output_tokens=meta.candidates_token_count,
    )
    headers = response.sdk_http_response.headers if response.sdk_http_response else None
    assert headers is not None
    assert headers["x-request-id"] == request_id
    assert headers["x-credits-used"] == credits(row["cost_micro"])
    assert_upstream_saw_a_valid_call(fd, kind, stream=False)
    if kind == "gemini":  # the SDK called /v1; the provider's configured v1beta base went upstream
        assert fd.last_sent(kind)["json"]["systemInstruction"] == {"parts": [{"text": "be brief"}], "role": "user"}


def test_genai_generate_content_stream(fd: FrontDoors, kind: str) -> None:
    request_id, client = new_request_id(), genai_client(fd)
    chunks = list(
        client.models.generate_content_stream(
            model=model_of(kind), contents=PROMPT, config=genai_config(request_id, system_instruction="be brief")
        )
    )
    assert "".join(c.text or "" for c in chunks) == expected_text(kind, PROMPT)
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    meta = last.usage_metadata
    assert meta is not None
    fd.assert_metered(
        request_id,
        endpoint="gemini",
        kind=kind,
        stream=True,
        input_tokens=meta.prompt_token_count,
        output_tokens=meta.candidates_token_count,
    )
    assert_upstream_saw_a_valid_call(fd, kind, stream=True)


def test_genai_tools_round_trip(fd: FrontDoors, kind: str) -> None:
    client = genai_client(fd)
    first = client.models.generate_content(
        model=model_of(kind), contents=PROMPT, config=genai_config(new_request_id(), tools=GENAI_TOOLS)
    )
    calls = first.function_calls or []
    assert [(c.name, c.args) for c in calls] == [("get_weather", TOOL_ARGS[kind])]
    assert first.candidates and first.candidates[0].content
    contents = [
        types.Content(role="user", parts=[types.Part(text=PROMPT)]),
        first.candidates[0].content,
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "sunny"})]
        ),
    ]
    none = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.NONE)
    )
    second = client.models.generate_content(
        model=model_of(kind),
        contents=contents,
        config=genai_config(new_request_id(), tools=GENAI_TOOLS, tool_config=none),
    )
    assert (second.text or "").startswith(REPLY_PREFIX[kind])
    assert not second.function_calls


def test_genai_tools_stream(fd: FrontDoors, kind: str) -> None:
    request_id, client = new_request_id(), genai_client(fd)
    chunks = list(
        client.models.generate_content_stream(
            model=model_of(kind), contents=PROMPT, config=genai_config(request_id, tools=GENAI_TOOLS)
        )
    )
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("get_weather", TOOL_ARGS[kind])]
    meta = chunks[-1].usage_metadata
    assert meta is not None
    fd.assert_metered(
        request_id,
        endpoint="gemini",
        kind=kind,
        stream=True,
        input_tokens=meta.prompt_token_count,
        output_tokens=meta.candidates_token_count,
    )
