"""Responses ↔ Chat translation, checked on fixtures, against the SDK's models, and through the SDK itself."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from server.translate.errors import TranslationError
from server.translate.responses import (
    ChatStreamToResponses,
    chat_to_response,
    response_to_chat_usage,
    responses_stream_usage,
    responses_to_chat,
)
from tests.conformance.schema import openapi

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CHAT_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": WEATHER_TOOL["parameters"],
    },
}
USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 7,
    "total_tokens": 27,
    "prompt_tokens_details": {"cached_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


def _completion(message: dict[str, Any], finish_reason: str = "stop", model: str = "up-model-1") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": USAGE,
    }


def _chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, usage: Any = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "up-model-1",
        "choices": choices,
        "usage": usage,
    }


def _parsed(response: dict[str, Any]) -> Response:
    """The SDK's reading of a translated response, which must also conform to OpenAI's published schema."""
    openapi().check("Response", response)
    return Response.model_validate(response)


def _refused(body: dict[str, Any]) -> TranslationError:
    with pytest.raises(TranslationError) as caught:
        responses_to_chat(body)
    return caught.value


# ---------------------------------------------------------------- requests


def test_string_input_and_instructions_become_system_and_user_messages() -> None:
    chat = responses_to_chat({"model": "m", "instructions": "Answer in French.", "input": "Hello", "store": True})
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}],
    }


def test_multi_turn_list_input_keeps_roles_and_text() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "developer", "content": "Be terse."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Name a colour."}]},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Blue.", "annotations": []}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "Another"}, {"type": "input_text", "text": " one."}],
            },
        ],
    }
    assert responses_to_chat(body)["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": [{"type": "text", "text": "Another"}, {"type": "text", "text": " one."}]},
    ]


def test_images_by_url_become_image_url_parts() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
    ]
    chat = responses_to_chat({"model": "m", "input": [{"role": "user", "content": content}]})
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]


def test_images_by_file_id_and_input_files_are_refused_precisely() -> None:
    image = {"type": "input_image", "file_id": "file-1", "detail": "auto"}
    error = _refused({"model": "m", "input": [{"role": "user", "content": [image]}]})
    assert (error.code, error.param, error.status) == ("unsupported_content", "input[0].content[0].file_id", 400)
    document = {"type": "input_file", "file_id": "file-2"}
    error = _refused({"model": "m", "input": [{"role": "user", "content": [document]}]})
    assert (error.code, error.param) == ("unsupported_content", "input[0].content[0]")


def test_function_tools_and_a_tool_call_round_trip_map_to_chat() -> None:
    body = {
        "model": "m",
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "24C"}]},
        ],
    }
    chat = responses_to_chat(body)
    assert chat["tools"] == [CHAT_WEATHER_TOOL]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
    ]


def test_a_function_call_without_preceding_text_opens_an_assistant_turn() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": "{}"},
        ],
    }
    assistant = responses_to_chat(body)["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert [call["id"] for call in assistant["tool_calls"]] == ["call_9"]


def test_built_in_tools_are_refused_with_unsupported_tool() -> None:
    error = _refused({"model": "m", "input": "hi", "tools": [WEATHER_TOOL, {"type": "web_search"}]})
    assert (error.code, error.param) == ("unsupported_tool", "tools[1]")
    error = _refused({"model": "m", "input": "hi", "tools": [WEATHER_TOOL], "tool_choice": {"type": "file_search"}})
    assert (error.code, error.param) == ("unsupported_tool", "tool_choice")


def test_previous_response_id_is_refused_because_no_state_is_kept() -> None:
    error = _refused({"model": "m", "input": "and then?", "previous_response_id": "resp_1"})
    assert (error.code, error.param) == ("unsupported_parameter", "previous_response_id")


def test_tool_choice_without_tools_is_dropped_as_chat_would_refuse_it() -> None:
    chat = responses_to_chat({"model": "m", "input": "hi", "tool_choice": "auto", "parallel_tool_calls": True})
    assert "tool_choice" not in chat and "parallel_tool_calls" not in chat


def test_allowed_tools_narrow_the_tool_list() -> None:
    other = {**WEATHER_TOOL, "name": "get_time"}
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]}
    chat = responses_to_chat({"model": "m", "input": "hi", "tools": [WEATHER_TOOL, other], "tool_choice": choice})
    assert [tool["function"]["name"] for tool in chat["tools"]] == ["get_time"]
    assert chat["tool_choice"] == "required"


def test_text_formats_become_response_format() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "name": "count", "schema": schema, "strict": True}
    chat = responses_to_chat({"model": "m", "input": "count", "text": {"format": fmt}})
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    chat = responses_to_chat({"model": "m", "input": "json", "text": {"format": {"type": "json_object"}}})
    assert chat["response_format"] == {"type": "json_object"}
    assert "response_format" not in responses_to_chat(
        {"model": "m", "input": "x", "text": {"format": {"type": "text"}}}
    )


def test_limits_sampling_and_stream_options_pass_through() -> None:
    body = {
        "model": "m",
        "input": "hi",
        "max_output_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "metadata": {"k": "v"},
        "reasoning": {"effort": "low"},
        "stream": True,
        "store": False,
        "truncation": "auto",
    }
    assert responses_to_chat(body) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "metadata": {"k": "v"},
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# ---------------------------------------------------------------- responses


def test_a_text_completion_becomes_a_completed_response_the_sdk_reads() -> None:
    request = {"model": "public-model", "instructions": "Be brief.", "input": "Hi", "temperature": 0.5}
    response = chat_to_response(_completion({"content": "Hello!"}), request, "resp_abc", 1700000000)
    assert response["id"] == "resp_abc" and response["object"] == "response"
    assert (response["status"], response["created_at"], response["model"]) == ("completed", 1700000000, "up-model-1")
    assert response["output"] == [
        {
            "id": "msg_abc_0",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
        }
    ]
    assert "output_text" not in response  # an SDK convenience, not part of the wire
    assert response["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 27,
    }
    assert (response["instructions"], response["temperature"], response["top_p"]) == ("Be brief.", 0.5, 1.0)
    assert (response["tool_choice"], response["tools"], response["parallel_tool_calls"]) == ("auto", [], True)
    assert response["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert (response["error"], response["incomplete_details"], response["metadata"]) == (None, None, {})
    parsed = _parsed(response)
    assert parsed.output_text == "Hello!"
    assert parsed.usage is not None and parsed.usage.input_tokens_details.cached_tokens == 8


def test_tool_calls_become_function_call_items() -> None:
    request = {"model": "m", "input": "Weather?", "tools": [WEATHER_TOOL], "tool_choice": "required"}
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
    ]
    chat = _completion({"content": None, "tool_calls": calls}, finish_reason="tool_calls")
    response = chat_to_response(chat, request, "resp_t", 1)
    assert response["output"] == [
        {
            "id": "fc_t_0",
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "status": "completed",
        },
        {
            "id": "fc_t_1",
            "type": "function_call",
            "call_id": "call_2",
            "name": "get_weather",
            "arguments": '{"city":"Rome"}',
            "status": "completed",
        },
    ]
    assert response["tools"][0]["name"] == "get_weather" and response["tool_choice"] == "required"
    parsed = _parsed(response)
    assert parsed.output_text == ""
    assert [item.type for item in parsed.output] == ["function_call", "function_call"]


def test_function_call_round_trip_feeds_the_output_back_as_input() -> None:
    """What a client does: run the returned call, then send its items plus the result back."""
    request = {"model": "m", "input": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER_TOOL]}
    call = {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    chat = _completion({"content": "Let me look.", "tool_calls": [call]}, finish_reason="tool_calls")
    first = chat_to_response(chat, request, "resp_1", 1)
    follow_up = {
        **request,
        "input": [
            *request["input"],
            *first["output"],
            {"type": "function_call_output", "call_id": "call_7", "output": "18C"},
        ],
    }
    assert responses_to_chat(follow_up)["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_7", "content": "18C"},
    ]


def test_a_length_cut_is_an_incomplete_response() -> None:
    request = {"model": "m", "input": "Tell a long story", "max_output_tokens": 5}
    response = chat_to_response(_completion({"content": "Once upon a"}, finish_reason="length"), request, "resp_l", 1)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert response["max_output_tokens"] == 5 and response["completed_at"] is None
    parsed = _parsed(response)
    assert parsed.output_text == "Once upon a"
    assert parsed.incomplete_details is not None and parsed.incomplete_details.reason == "max_output_tokens"


def test_a_refusal_becomes_a_refusal_part() -> None:
    response = chat_to_response(_completion({"content": None, "refusal": "I can't help."}), {"model": "m"}, "resp_r", 1)
    assert response["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help."}]
    _parsed(response)


def test_json_schema_format_is_echoed_and_validates() -> None:
    fmt = {"type": "json_schema", "name": "count", "schema": {"type": "object"}, "strict": True}
    request = {"model": "m", "input": "count", "text": {"format": fmt}, "metadata": {"trace": "1"}}
    response = chat_to_response(_completion({"content": '{"n": 3}'}), request, "resp_j", 1)
    assert response["text"]["format"] == fmt and response["metadata"] == {"trace": "1"}
    assert _parsed(response).output_text == '{"n": 3}'


# ---------------------------------------------------------------- streams


def _run_stream(
    request: dict[str, Any], chunks: list[dict[str, Any]], fail: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    translator = ChatStreamToResponses(request, "resp_s", 1700000000)
    events = [event for chunk in chunks for event in translator.feed(chunk)]
    events += translator.fail(fail) if fail else translator.finish()
    assert translator.finish() == [] and translator.feed(chunks[0]) == []  # closed for good
    for number, (event_type, data) in enumerate(events):
        assert data["type"] == event_type and data["sequence_number"] == number
        assert EVENTS.validate_python(data).type == event_type
        openapi().check(openapi().member("ResponseStreamEvent", event_type), data)
    return events


def _brief(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """Event type plus the one field that matters for each, to compare whole sequences at a glance."""
    brief: list[tuple[Any, ...]] = []
    for event_type, data in events:
        if "delta" in data:
            brief.append((event_type, data["output_index"], data["delta"]))
        elif event_type.endswith("output_text.done"):
            brief.append((event_type, data["output_index"], data["text"]))
        elif event_type.endswith("arguments.done"):
            brief.append((event_type, data["output_index"], data["name"], data["arguments"]))
        elif "item" in data:
            brief.append((event_type, data["output_index"], data["item"]["type"], data["item"]["status"]))
        elif "response" in data:
            brief.append((event_type, data["response"]["status"]))
        else:
            brief.append((event_type,))
    return brief


def test_a_text_stream_becomes_responses_events() -> None:
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({}, finish_reason="stop"),
        _chunk(usage=USAGE),
    ]
    events = _run_stream({"model": "m", "input": "Hi", "stream": True}, chunks)
    assert _brief(events) == [
        ("response.created", "in_progress"),
        ("response.in_progress", "in_progress"),
        ("response.output_item.added", 0, "message", "in_progress"),
        ("response.content_part.added",),
        ("response.output_text.delta", 0, "Hel"),
        ("response.output_text.delta", 0, "lo"),
        ("response.output_text.done", 0, "Hello"),
        ("response.content_part.done",),
        ("response.output_item.done", 0, "message", "completed"),
        ("response.completed", "completed"),
    ]
    delta = events[4][1]
    assert (delta["item_id"], delta["content_index"], delta["logprobs"]) == ("msg_s_0", 0, [])
    assert events[3][1]["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    assert events[7][1]["part"] == {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
    final = _parsed(events[-1][1]["response"])
    assert final.output_text == "Hello" and final.usage is not None and final.usage.total_tokens == 27
    assert responses_stream_usage(events[-1][1]) == response_to_chat_usage(events[-1][1]["response"]["usage"])


def test_a_stream_with_text_then_tool_calls_closes_the_message_first() -> None:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return _chunk({"tool_calls": [{"index": index, **fields}]})

    chunks = [
        _chunk({"role": "assistant", "content": "Checking."}),
        call(0, id="call_1", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"city":'}),
        call(0, function={"arguments": '"Paris"}'}),
        call(1, id="call_2", type="function", function={"name": "get_weather", "arguments": '{"city":"Rome"}'}),
        _chunk({}, finish_reason="tool_calls"),
        _chunk(usage=USAGE),
    ]
    events = _run_stream({"model": "m", "input": "Weather?", "tools": [WEATHER_TOOL], "stream": True}, chunks)
    assert _brief(events) == [
        ("response.created", "in_progress"),
        ("response.in_progress", "in_progress"),
        ("response.output_item.added", 0, "message", "in_progress"),
        ("response.content_part.added",),
        ("response.output_text.delta", 0, "Checking."),
        ("response.output_text.done", 0, "Checking."),
        ("response.content_part.done",),
        ("response.output_item.done", 0, "message", "completed"),
        ("response.output_item.added", 1, "function_call", "in_progress"),
        ("response.function_call_arguments.delta", 1, '{"city":'),
        ("response.function_call_arguments.delta", 1, '"Paris"}'),
        ("response.output_item.added", 2, "function_call", "in_progress"),
        ("response.function_call_arguments.delta", 2, '{"city":"Rome"}'),
        ("response.function_call_arguments.done", 1, "get_weather", '{"city":"Paris"}'),
        ("response.output_item.done", 1, "function_call", "completed"),
        ("response.function_call_arguments.done", 2, "get_weather", '{"city":"Rome"}'),
        ("response.output_item.done", 2, "function_call", "completed"),
        ("response.completed", "completed"),
    ]
    added = events[8][1]["item"]
    assert (added["call_id"], added["name"], added["arguments"], added["id"]) == ("call_1", "get_weather", "", "fc_s_1")
    final = _parsed(events[-1][1]["response"])
    assert [(item.type, getattr(item, "call_id", None)) for item in final.output] == [
        ("message", None),
        ("function_call", "call_1"),
        ("function_call", "call_2"),
    ]


def test_a_tool_call_whose_name_comes_late_is_announced_once_named() -> None:
    chunks = [
        _chunk({"tool_calls": [{"index": 0, "id": "call_x", "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "1}"}}]}),
        _chunk({}, finish_reason="tool_calls"),
    ]
    events = _run_stream({"model": "m", "input": "x"}, chunks)
    assert _brief(events)[2:5] == [
        ("response.output_item.added", 0, "function_call", "in_progress"),
        ("response.function_call_arguments.delta", 0, '{"a":1}'),
        ("response.function_call_arguments.done", 0, "f", '{"a":1}'),
    ]
    assert events[-1][1]["response"]["usage"] is None  # no usage chunk: the gateway estimates


def test_a_length_cut_stream_ends_incomplete() -> None:
    chunks = [_chunk({"content": "Once"}), _chunk({}, finish_reason="length"), _chunk(usage=USAGE)]
    events = _run_stream({"model": "m", "input": "story", "max_output_tokens": 1}, chunks)
    assert _brief(events)[-2:] == [
        ("response.output_item.done", 0, "message", "incomplete"),
        ("response.incomplete", "incomplete"),
    ]
    final = events[-1][1]["response"]
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert responses_stream_usage(events[-1][1]) is not None


def test_a_broken_stream_ends_with_an_error_and_a_failed_response() -> None:
    events = _run_stream({"model": "m", "input": "Hi"}, [_chunk({"content": "Hal"})], fail="upstream went away")
    assert _brief(events)[-2:] == [("error",), ("response.failed", "failed")]
    assert events[-2][1]["message"] == "upstream went away"
    failed = _parsed(events[-1][1]["response"])
    assert failed.error is not None and failed.error.code == "server_error"
    assert failed.output_text == "Hal" and failed.output[0].status == "incomplete"


def test_a_refusal_stream_becomes_refusal_events_after_the_text_part() -> None:
    chunks = [_chunk({"content": "Well"}), _chunk({"refusal": "I can't"}), _chunk({"refusal": " help."})]
    events = _run_stream({"model": "m", "input": "x"}, [*chunks, _chunk({}, finish_reason="stop")])
    assert _brief(events)[3:12] == [
        ("response.content_part.added",),
        ("response.output_text.delta", 0, "Well"),
        ("response.output_text.done", 0, "Well"),
        ("response.content_part.done",),
        ("response.content_part.added",),
        ("response.refusal.delta", 0, "I can't"),
        ("response.refusal.delta", 0, " help."),
        ("response.refusal.done",),
        ("response.content_part.done",),
    ]
    assert events[11][1]["part"] == {"type": "refusal", "refusal": "I can't help."}
    assert [part["type"] for part in events[-1][1]["response"]["output"][0]["content"]] == ["output_text", "refusal"]


def test_the_first_events_can_be_sent_before_any_chunk() -> None:
    translator = ChatStreamToResponses({"model": "m", "input": "Hi"}, "resp_e", 5)
    assert [name for name, _ in translator.start()] == ["response.created", "response.in_progress"]
    assert translator.start() == []
    assert [name for name, _ in translator.finish()] == ["response.completed"]


# ---------------------------------------------------------------- metering helpers


def test_responses_usage_converts_to_chat_usage_for_metering() -> None:
    usage = {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 59,
    }
    assert response_to_chat_usage(usage) == {
        "prompt_tokens": 50,
        "completion_tokens": 9,
        "total_tokens": 59,
        "prompt_tokens_details": {"cached_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    completed = {"type": "response.completed", "sequence_number": 9, "response": {"usage": usage}}
    assert responses_stream_usage(completed) == response_to_chat_usage(usage)
    assert responses_stream_usage({"type": "response.output_text.delta", "delta": "x"}) is None
    assert responses_stream_usage({"type": "response.completed", "response": {"usage": None}}) is None


# ---------------------------------------------------------------- the official SDK, end to end in-process


def _fake_chat_model(chat: dict[str, Any]) -> dict[str, Any]:
    """A stand-in chat provider: calls the first tool once, otherwise answers with JSON or an echo."""
    last = chat["messages"][-1]
    if chat.get("tools") and last["role"] == "user":
        call = {
            "id": "call_sdk",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
        return _completion({"content": None, "tool_calls": [call]}, finish_reason="tool_calls")
    if chat.get("response_format", {}).get("type") == "json_schema":
        return _completion({"content": '{"city": "Oslo", "celsius": 4}'})
    return _completion({"content": f"echo: {last['content']}"})


def _stream_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    message = completion["choices"][0]["message"]
    chunks = [_chunk({"role": "assistant", "content": ""})]
    for word in (message.get("content") or "").split(" "):
        chunks.append(_chunk({"content": word if len(chunks) == 1 else " " + word}))
    for index, call in enumerate(message.get("tool_calls") or []):
        chunks.append(
            _chunk({"tool_calls": [{"index": index, **call, "function": {**call["function"], "arguments": ""}}]})
        )
        chunks.append(
            _chunk({"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]})
        )
    chunks.append(_chunk({}, finish_reason=completion["choices"][0]["finish_reason"]))
    return [*chunks, _chunk(usage=USAGE)]


def _gateway(request: httpx.Request) -> httpx.Response:
    """What the gateway does for a chat-only provider, minus the HTTP framework."""
    assert request.url.path == "/v1/responses"
    body = json.loads(request.content)
    chat = responses_to_chat(body)
    completion = _fake_chat_model(chat)
    if not body.get("stream"):
        return httpx.Response(200, json=chat_to_response(completion, body, "resp_sdk", 1700000000))
    translator = ChatStreamToResponses(body, "resp_sdk", 1700000000)
    events = [event for chunk in _stream_chunks(completion) for event in translator.feed(chunk)] + translator.finish()
    sse = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    return httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})


@pytest.fixture
def client() -> openai.OpenAI:
    transport = httpx.MockTransport(_gateway)
    return openai.OpenAI(
        api_key="gw_live_test", base_url="http://gateway.test/v1", http_client=httpx.Client(transport=transport)
    )


def test_the_sdk_reads_a_translated_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="public-model", instructions="Be brief.", input="hello")
    assert response.output_text == "echo: hello"
    assert response.usage is not None and response.usage.output_tokens == 7


def test_the_sdk_parses_structured_output_through_translation(client: openai.OpenAI) -> None:
    class Weather(BaseModel):
        city: str
        celsius: int

    response = client.responses.parse(model="public-model", input="Weather in Oslo?", text_format=Weather)
    assert response.output_parsed == Weather(city="Oslo", celsius=4)


def test_the_sdk_runs_a_tool_call_round_trip(client: openai.OpenAI) -> None:
    tools: Any = [WEATHER_TOOL]
    first = client.responses.create(model="public-model", input="Weather in Oslo?", tools=tools)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(call.name, call.arguments) for call in calls] == [("get_weather", '{"city":"Oslo"}')]
    follow_up: Any = [
        {"role": "user", "content": "Weather in Oslo?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "4C"},
    ]
    second = client.responses.create(model="public-model", input=follow_up, tools=tools)
    assert second.output_text == "echo: 4C"


def test_the_sdk_stream_helper_assembles_a_translated_stream(client: openai.OpenAI) -> None:
    with client.responses.stream(model="public-model", input="hello there") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: hello there" == final.output_text
    assert final.usage is not None and final.usage.input_tokens == 20


def test_the_sdk_streams_a_translated_tool_call(client: openai.OpenAI) -> None:
    tools: Any = [WEATHER_TOOL]
    stream = client.responses.create(model="public-model", input="Weather in Oslo?", tools=tools, stream=True)
    events = list(stream)
    assert events[-1].type == "response.completed"
    done = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert [event.arguments for event in done] == ['{"city":"Oslo"}']
