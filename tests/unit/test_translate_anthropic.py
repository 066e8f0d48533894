"""OpenAI chat ↔ Anthropic Messages translation, checked on recorded-style fixtures and by the official SDKs.

Requests translated for Anthropic are also run through the strict stand-in's validator, and translated
streams are parsed by the real SDKs (over an in-memory transport), so a shape the SDKs would reject fails here.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from server.translate.anthropic import (
    ChatStreamToMessages,
    MessagesStreamToChat,
    chat_to_messages,
    chat_to_messages_response,
    error_body,
    messages_request_to_chat,
    messages_to_chat,
)
from server.translate.errors import TranslationError
from tests.upstreams.anthropic_upstream import validate

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}
ANTHROPIC_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


# ------------------------------------------------------------------ direction A: requests


def test_full_chat_request_becomes_a_valid_messages_request() -> None:
    body = {
        "model": "public-claude",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            _user("What's the weather in Paris?"),
            _user(
                [
                    {"type": "text", "text": "And look at these:"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                ]
            ),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
            _user("Thanks!"),
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stop": "END",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 256,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-42",
        "seed": 7,
        "logprobs": True,
        "frequency_penalty": 0.1,
    }
    expected = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "You are terse.\n\nAnswer in English.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's the weather in Paris?"},
                    {"type": "text", "text": "And look at these:"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C and sunny"},
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ],
        "tools": [ANTHROPIC_WEATHER_TOOL],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "stream": True,
        "metadata": {"user_id": "user-42"},
    }
    out = chat_to_messages(body, "claude-sonnet-4-5", default_max_tokens=4096)
    assert out == expected
    validate(out)  # the strict stand-in accepts it


def test_minimal_request_uses_the_default_max_tokens() -> None:
    out = chat_to_messages({"model": "m", "messages": [_user("hi")]}, "claude-haiku", 1024)
    assert out == {"model": "claude-haiku", "max_tokens": 1024, "messages": [_user([{"type": "text", "text": "hi"}])]}
    assert chat_to_messages({"messages": [_user("hi")], "max_tokens": 9}, "c", 1024)["max_tokens"] == 9


def test_consecutive_tool_results_share_one_user_turn() -> None:
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": ""}} for i in (1, 2)
    ]
    messages = [
        _user("weather in two cities"),
        {"role": "assistant", "content": "Checking both.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "rain"}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "sun"},
    ]
    out = chat_to_messages({"messages": messages, "tools": [WEATHER_TOOL]}, "c", 100)
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
    ]
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "rain"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "sun"},
        ],
    }
    validate(out)


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", False, {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice_mapping(choice: Any, parallel: Any, expected: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"messages": [_user("hi")], "tools": [WEATHER_TOOL]}
    body |= {"tool_choice": choice} if choice is not None else {}
    body |= {"parallel_tool_calls": parallel} if parallel is not None else {}
    out = chat_to_messages(body, "c", 100)
    assert out.get("tool_choice") == expected
    validate(out)


def test_json_object_mode_becomes_a_system_instruction() -> None:
    body = {"messages": [{"role": "system", "content": "Be helpful."}, _user("list 3 colours")]}
    out = chat_to_messages(body | {"response_format": {"type": "json_object"}}, "c", 100)
    assert out["system"].startswith("Be helpful.\n\n") and "valid JSON object only" in out["system"]
    assert chat_to_messages(body | {"response_format": {"type": "text"}}, "c", 100)["system"] == "Be helpful."


def test_json_schema_mode_includes_the_schema() -> None:
    schema = {"type": "object", "properties": {"colours": {"type": "array"}}, "required": ["colours"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "colours", "schema": schema, "strict": True}}
    out = chat_to_messages({"messages": [_user("list 3 colours")], "response_format": fmt}, "c", 100)
    assert "valid JSON object only" in out["system"] and json.dumps(schema) in out["system"]


def test_stop_list_and_temperature_clamp() -> None:
    out = chat_to_messages({"messages": [_user("hi")], "stop": ["a", "b"], "temperature": 1.7}, "c", 100)
    assert out["stop_sequences"] == ["a", "b"] and out["temperature"] == 1.0


def test_audio_input_is_refused_with_its_own_code() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    with pytest.raises(TranslationError) as err:
        chat_to_messages({"messages": [_user([part])]}, "c", 100)
    assert (err.value.code, err.value.param, err.value.status) == ("audio_not_supported_by_model", "messages", 400)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": "only a system prompt"}]},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [_user([{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}])]},
        {"messages": [_user([{"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}])]},
        {"messages": [_user("hi")], "n": 2},
        {"messages": [_user("hi")], "tools": [{"type": "custom", "custom": {"name": "x"}}]},
        {"messages": [_user("hi")], "tools": [WEATHER_TOOL], "tool_choice": "sometimes"},
        {
            "messages": [
                _user("hi"),
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]},
            ]
        },
    ],
)
def test_untranslatable_requests_are_refused_with_400(body: dict[str, Any]) -> None:
    with pytest.raises(TranslationError) as err:
        chat_to_messages(body, "c", 100)
    assert err.value.status == 400 and err.value.code == "invalid_request"


# ------------------------------------------------------------------ direction A: responses

ANTHROPIC_RESPONSE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "Let me check "},
        {"type": "text", "text": "the weather."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 30,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000,
        "output_tokens": 42,
        "service_tier": "standard",
    },
}


def test_messages_response_becomes_a_chat_completion() -> None:
    out = messages_to_chat(ANTHROPIC_RESPONSE, "public-claude", created=1700000000)
    assert out == {
        "id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "public-claude",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check the weather.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_01A09q90qw90lq917835lq9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 1230,
            "completion_tokens": 42,
            "total_tokens": 1272,
            "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_input_tokens": 200},
        },
    }
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.tool_calls and parsed.usage and parsed.usage.prompt_tokens == 1230


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls")],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    resp = {**ANTHROPIC_RESPONSE, "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    choice = messages_to_chat(resp, "m")["choices"][0]
    assert choice["finish_reason"] == finish and "tool_calls" not in choice["message"]


# ------------------------------------------------------------------ direction A: streams

ANTHROPIC_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 20,
                "cache_read_input_tokens": 100,
                "output_tokens": 2,
            },
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ", let me check."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {},
        },
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ' "Paris"}'}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 89},
    },
    {"type": "message_stop"},
]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "public-claude",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _tool_delta(**fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, **fields}]}


EXPECTED_CHUNKS = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Okay"}),
    _chunk({"content": ", let me check."}),
    _chunk(
        _tool_delta(
            id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", type="function", function={"name": "get_weather", "arguments": ""}
        )
    ),
    _chunk(_tool_delta(function={"arguments": '{"city":'})),
    _chunk(_tool_delta(function={"arguments": ' "Paris"}'})),
    _chunk({}, "tool_calls"),
    {
        "id": "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "public-claude",
        "choices": [],
        "usage": {
            "prompt_tokens": 592,
            "completion_tokens": 89,
            "total_tokens": 681,
            "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_input_tokens": 20},
        },
    },
]


def test_anthropic_stream_becomes_chat_chunks() -> None:
    translator = MessagesStreamToChat("public-claude", created=1700000000)
    chunks: list[dict[str, Any]] = []
    for event in ANTHROPIC_EVENTS:
        assert not translator.done
        chunks += translator.feed(event)
    assert translator.done
    assert chunks == EXPECTED_CHUNKS


def _sse_client(kind: str, body: bytes) -> Any:
    """An in-memory HTTP client answering every request with ``body`` as an event stream. The anthropic
    SDK is built on httpx2 and refuses httpx objects; the openai SDK takes httpx."""
    lib: Any = {"openai": httpx, "anthropic": httpx2}[kind]

    def handler(request: Any) -> Any:
        return lib.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return lib.Client(transport=lib.MockTransport(handler))


def test_translated_chat_chunks_accumulate_in_the_openai_sdk() -> None:
    translator = MessagesStreamToChat("public-claude")
    chunks = [c for e in ANTHROPIC_EVENTS for c in translator.feed(e)]
    body = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
    client = openai.OpenAI(api_key="sk-x", base_url="http://gw.test/v1", http_client=_sse_client("openai", body))
    with client.chat.completions.stream(model="public-claude", messages=[_user("hi")]) as stream:  # type: ignore[list-item]
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Okay, let me check." and final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert final.usage and final.usage.prompt_tokens == 592 and final.usage.completion_tokens == 89
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


def test_stream_error_event_raises_a_502_translation_error() -> None:
    translator = MessagesStreamToChat("m")
    translator.feed(ANTHROPIC_EVENTS[0])
    with pytest.raises(TranslationError) as err:
        translator.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert (err.value.status, err.value.code) == (502, "upstream_stream_error")
    assert "overloaded_error" in err.value.message and not translator.done


def test_unknown_and_thinking_events_emit_nothing() -> None:
    translator = MessagesStreamToChat("m")
    translator.feed(ANTHROPIC_EVENTS[0])
    assert translator.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}) == []
    assert translator.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta"}}) == []
    assert translator.feed({"type": "some_future_event"}) == []


# ------------------------------------------------------------------ direction B: requests


def test_messages_request_becomes_a_chat_request() -> None:
    body = {
        "model": "public-model",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Use metric."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "station offline"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            },
            {"role": "assistant", "content": "Paris is mild."},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [ANTHROPIC_WEATHER_TOOL],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.8,
        "top_k": 40,
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }
    assert messages_request_to_chat(body) == {
        "model": "public-model",
        "messages": [
            {"role": "system", "content": "You are terse.\nUse metric."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: station offline"},
            {"role": "user", "content": "Summarise."},
            {"role": "assistant", "content": "Paris is mild."},
            {"role": "user", "content": "Thanks"},
        ],
        "max_tokens": 512,
        "temperature": 0.5,
        "top_p": 0.8,
        "stop": ["END"],
        "tools": [WEATHER_TOOL | {"function": {k: v for k, v in WEATHER_TOOL["function"].items() if k != "strict"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "user-42",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_anthropic_tool_choice_maps_back(choice: dict[str, Any], expected: Any) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [_user("hi")], "tools": [ANTHROPIC_WEATHER_TOOL]}
    out = messages_request_to_chat(body | {"tool_choice": choice})
    assert out["tool_choice"] == expected and "parallel_tool_calls" not in out


def test_server_tools_and_unknown_blocks_are_refused() -> None:
    base = {"model": "m", "max_tokens": 5, "messages": [_user("hi")]}
    with pytest.raises(TranslationError):
        messages_request_to_chat(base | {"tools": [{"type": "web_search_20250305", "name": "web_search"}]})
    with pytest.raises(TranslationError):
        messages_request_to_chat(base | {"messages": [_user([{"type": "container_upload", "file_id": "f"}])]})
    with pytest.raises(TranslationError):
        messages_request_to_chat({"model": "m", "max_tokens": 5})


# ------------------------------------------------------------------ direction B: responses

CHAT_RESPONSE = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    },
}


def test_chat_completion_becomes_an_anthropic_message() -> None:
    out = chat_to_messages_response(CHAT_RESPONSE, "public-model")
    assert out == {
        "id": "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "type": "message",
        "role": "assistant",
        "model": "public-model",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 93,
            "output_tokens": 46,
            "cache_read_input_tokens": 1024,
            "cache_creation_input_tokens": 0,
        },
    }
    Message.model_validate(out)


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reasons_map_to_stop_reasons(finish: str, stop_reason: str) -> None:
    choice = {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish}
    assert chat_to_messages_response({**CHAT_RESPONSE, "choices": [choice]}, "m")["stop_reason"] == stop_reason


def test_usage_round_trips_through_both_directions() -> None:
    chat = messages_to_chat(ANTHROPIC_RESPONSE, "m")
    assert chat_to_messages_response(chat, "m")["usage"] == {
        k: ANTHROPIC_RESPONSE["usage"][k]  # type: ignore[index]
        for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    }


# ------------------------------------------------------------------ direction B: streams


def _openai_chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o",
        "choices": choices,
        "usage": usage,
    }


def _call(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


OPENAI_CHUNKS = [
    _openai_chunk({"role": "assistant", "content": "", "refusal": None}),
    _openai_chunk({"content": "Let me "}),
    _openai_chunk({"content": "check."}),
    _openai_chunk(_call(0, id="call_1", type="function", function={"name": "get_weather", "arguments": ""})),
    _openai_chunk(_call(0, function={"arguments": '{"city"'})),
    _openai_chunk(_call(0, function={"arguments": ': "Paris"}'})),
    _openai_chunk(_call(1, id="call_2", type="function", function={"name": "get_time", "arguments": "{}"})),
    _openai_chunk({}, "tool_calls"),
    _openai_chunk(
        None,
        usage={
            "prompt_tokens": 50,
            "completion_tokens": 20,
            "total_tokens": 70,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    ),
]


def _ev(name: str, **data: Any) -> tuple[str, dict[str, Any]]:
    return (name, {"type": name, **data})


def _text_delta(index: int, text: str) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def _json_delta(index: int, partial: str) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": partial})


def _tool_block(index: int, call_id: str, name: str) -> tuple[str, dict[str, Any]]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return _ev("content_block_start", index=index, content_block=block)


MESSAGE_START = _ev(
    "message_start",
    message={
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "public-model",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    },
)
EXPECTED_EVENTS = [
    MESSAGE_START,
    _ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    _text_delta(0, "Let me "),
    _text_delta(0, "check."),
    _ev("content_block_stop", index=0),
    _tool_block(1, "call_1", "get_weather"),
    _json_delta(1, '{"city"'),
    _json_delta(1, ': "Paris"}'),
    _ev("content_block_stop", index=1),
    _tool_block(2, "call_2", "get_time"),
    _json_delta(2, "{}"),
    _ev("content_block_stop", index=2),
    _ev(
        "message_delta",
        delta={"stop_reason": "tool_use", "stop_sequence": None},
        usage={
            "input_tokens": 40,
            "output_tokens": 20,
            "cache_read_input_tokens": 10,
            "cache_creation_input_tokens": 0,
        },
    ),
    _ev("message_stop"),
]


def test_chat_stream_becomes_anthropic_events() -> None:
    translator = ChatStreamToMessages("public-model")
    events = [e for chunk in OPENAI_CHUNKS for e in translator.feed(chunk)]
    assert events == EXPECTED_EVENTS
    assert translator.done and translator.finish() == []


def test_finish_ends_a_stream_that_had_no_usage_chunk() -> None:
    translator = ChatStreamToMessages("public-model")
    events = [e for chunk in OPENAI_CHUNKS[:3] for e in translator.feed(chunk)]
    events += translator.feed(_openai_chunk({}, "length"))
    assert events[-1] == _ev("content_block_stop", index=0) and not translator.done
    assert translator.finish() == [
        _ev("message_delta", delta={"stop_reason": "max_tokens", "stop_sequence": None}, usage={"output_tokens": 0}),
        _ev("message_stop"),
    ]
    assert translator.done


def test_finish_closes_an_open_block_and_starts_an_empty_message() -> None:
    translator = ChatStreamToMessages("m")
    translator.feed(_openai_chunk({"content": "cut"}))
    names = [name for name, _ in translator.finish()]
    assert names == ["content_block_stop", "message_delta", "message_stop"]
    assert [name for name, _ in ChatStreamToMessages("m").finish()] == [
        "message_start",
        "message_delta",
        "message_stop",
    ]


def test_usage_on_the_finish_chunk_itself_ends_the_message() -> None:
    translator = ChatStreamToMessages("m")
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    events = translator.feed(_openai_chunk({"content": "hi"}, "stop", usage))
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["usage"]["input_tokens"] == 3 and events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_translated_events_are_valid_for_the_anthropic_sdk() -> None:
    translator = ChatStreamToMessages("public-model")
    events = [e for chunk in OPENAI_CHUNKS for e in translator.feed(chunk)] + translator.finish()
    stream_event = TypeAdapter(anthropic.types.RawMessageStreamEvent)
    for name, data in events:  # each one validates strictly as a member of the SDK's stream event union
        assert stream_event.validate_python(data).type == name
    body = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
    client = anthropic.Anthropic(
        api_key="sk-ant-x", base_url="http://gw.test", http_client=_sse_client("anthropic", body)
    )
    with client.messages.stream(model="public-model", max_tokens=100, messages=[_user("hi")]) as stream:  # type: ignore[list-item]
        final = stream.get_final_message()
    assert final.id == "msg_abc123" and final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[0].text == "Let me check."  # type: ignore[union-attr]
    assert final.content[1].input == {"city": "Paris"} and final.content[2].input == {}  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (40, 20, 10)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_body_uses_anthropic_error_types(status: int, kind: str) -> None:
    assert error_body(status, "boom") == {"type": "error", "error": {"type": kind, "message": "boom"}}
