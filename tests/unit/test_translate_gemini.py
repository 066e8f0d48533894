"""Gemini <-> OpenAI translation on recorded-style fixtures, checked with both official SDKs' own models.

Direction A outputs are also fed to the strict Gemini stand-in's request validator, so a body the real API
would refuse (unknown field, empty OBJECT schema, function-response turn in the wrong place) fails here.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from google.genai import types as gt
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from server.translate.errors import TranslationError
from server.translate.gemini import (
    ChatStreamToGemini,
    GeminiStreamToChat,
    batch_embed_to_embeddings,
    chat_to_generate_content,
    chat_to_generate_content_response,
    embeddings_to_batch_embed,
    error_body,
    gemini_schema,
    generate_content_request_to_chat,
    generate_content_to_chat,
)
from tests.upstreams.gemini_upstream import check_generate_request

PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def gemini_request(body: dict[str, Any]) -> dict[str, Any]:
    """Translate, then prove the SDK's models and the strict stand-in both accept the result."""
    out = chat_to_generate_content(body)
    for content in out["contents"]:
        gt.Content.model_validate(content)
    if "systemInstruction" in out:
        gt.Content.model_validate(out["systemInstruction"])
    for tool in out.get("tools", []):
        gt.Tool.model_validate(tool)
    if "toolConfig" in out:
        gt.ToolConfig.model_validate(out["toolConfig"])
    if "generationConfig" in out:
        gt.GenerationConfig.model_validate(out["generationConfig"])
    check_generate_request(json.loads(json.dumps(out)))
    return out


# ----------------------------------------------------------------- direction A: chat request -> Gemini


def test_text_and_system() -> None:
    body = {
        "model": "gemini-2.0-flash",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]},
            {"role": "user", "content": "hello"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u1",
    }
    assert gemini_request(body) == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "no emoji"}]},
        "generationConfig": {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 50},
    }


def test_multi_turn_and_generation_config() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello!"},
            {"role": "user", "content": [{"type": "text", "text": "again"}, {"type": "text", "text": " please"}]},
        ],
        "max_tokens": 10,
        "max_completion_tokens": 20,
        "stop": "END",
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
    }
    out = gemini_request(body)
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello!"}]},
        {"role": "user", "parts": [{"text": "again"}, {"text": " please"}]},
    ]
    assert out["generationConfig"] == {
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.1,
        "maxOutputTokens": 20,
        "stopSequences": ["END"],
    }
    assert "systemInstruction" not in out
    assert gemini_request({**body, "stop": ["a", "b"]})["generationConfig"]["stopSequences"] == ["a", "b"]


def test_images_and_audio() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ]
    out = gemini_request({"messages": [{"role": "user", "content": content}]})
    assert out["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(
    ("part", "code", "param"),
    [
        ({"type": "file", "file": {"file_id": "file-1"}}, "unresolved_file", "messages[0].content[0].file"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}, "invalid_request", None),
        ({"type": "input_audio", "input_audio": {"data": "x", "format": "flac"}}, "invalid_request", None),
        ({"type": "video", "video": {}}, "invalid_request", "messages[0].content[0].type"),
    ],
)
def test_unsupported_parts_raise(part: dict[str, Any], code: str, param: str | None) -> None:
    with pytest.raises(TranslationError) as exc:
        chat_to_generate_content({"messages": [{"role": "user", "content": [part]}]})
    assert exc.value.code == code and exc.value.status == 400
    if param:
        assert exc.value.param == param


def test_tools_calls_and_results() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                        "extra_content": {"google": {"thought_signature": "c2ln"}},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [
            WEATHER_TOOL,
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
    }
    out = gemini_request(body)
    assert out["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": "c2ln"},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 21}}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
            ],
        },
        {"role": "user", "parts": [{"text": "thanks"}]},
    ]
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "city": {"type": "STRING"},
                            "unit": {"nullable": True, "type": "STRING", "enum": ["c", "f"]},
                        },
                        "required": ["city"],
                    },
                },
                {"name": "get_time"},  # an OBJECT without properties is a 400 on Gemini: omitted
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    out = gemini_request(
        {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL], "tool_choice": choice}
    )
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_tool_choice_edges() -> None:
    time_tool = {"type": "function", "function": {"name": "get_time"}}
    auto_subset = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_time"}}]},
    }
    out = gemini_request(
        {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL, time_tool], "tool_choice": auto_subset}
    )
    assert out["tools"] == [{"functionDeclarations": [{"name": "get_time"}]}]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert "toolConfig" not in gemini_request({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none"})
    with pytest.raises(TranslationError) as exc:
        chat_to_generate_content(
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {}}]}
        )
    assert exc.value.param == "tools[0]"


def test_tool_message_needs_a_known_call() -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}]
    with pytest.raises(TranslationError) as exc:
        chat_to_generate_content({"messages": messages})
    assert exc.value.param == "messages[1].tool_call_id"


def test_json_modes() -> None:
    base = {"messages": [{"role": "user", "content": "json please"}]}
    out = gemini_request({**base, "response_format": {"type": "json_object"}})
    assert out["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "name": {"type": "string", "format": "email"},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
            "kind": {"const": "person"},
            "age": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["name", "tags"],
        "additionalProperties": False,
        "$defs": {
            "Tag": {"type": "object", "properties": {"label": {"type": "string"}}, "additionalProperties": False}
        },
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": schema}}
    out = gemini_request({**base, "response_format": fmt})
    assert out["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "name": {"type": "STRING"},
                "when": {"type": "STRING", "format": "date-time"},
                "tags": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"label": {"type": "STRING"}}}},
                "kind": {"enum": ["person"]},
                "age": {"nullable": True, "type": "INTEGER"},
            },
            "required": ["name", "tags"],
        },
    }
    gt.Schema.model_validate(out["generationConfig"]["responseSchema"])


def test_self_referencing_schema_is_refused() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
    }
    with pytest.raises(TranslationError):
        gemini_schema(schema)


# ---------------------------------------------------------------- direction A: Gemini reply -> chat


def usage_meta(**extra: int) -> dict[str, Any]:
    return {"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17, **extra}


def test_reply_text_and_usage_with_cache_and_thoughts() -> None:
    resp = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "thinking...", "thought": True}, {"text": "Hello"}, {"text": " world"}],
                },
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": [],
            }
        ],
        "usageMetadata": usage_meta(totalTokenCount=20, thoughtsTokenCount=3, cachedContentTokenCount=8),
        "modelVersion": "gemini-2.5-flash",
        "responseId": "abc123",
    }
    out = generate_content_to_chat(resp, "gemini-2.5-flash")
    parsed = ChatCompletion.model_validate(out)
    assert parsed.id == "chatcmpl-abc123" and parsed.model == "gemini-2.5-flash"
    assert parsed.choices[0].message.content == "Hello world"
    assert parsed.choices[0].finish_reason == "stop"
    assert out["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 8,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }


def test_reply_function_calls() -> None:
    resp = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                            "thoughtSignature": "c2ln",
                        },
                        {"functionCall": {"name": "get_time", "args": {}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage_meta(),
    }
    out = generate_content_to_chat(resp, "g")
    choice = ChatCompletion.model_validate(out).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = out["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_0", "call_1"]
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    # the signature and the call survive the next turn back to Gemini
    back = chat_to_generate_content(
        {"messages": [{"role": "user", "content": "x"}, out["choices"][0]["message"]], "tools": [WEATHER_TOOL]}
    )
    assert back["contents"][1]["parts"][0] == resp["candidates"][0]["content"]["parts"][0]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    resp = {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason}]}
    out = generate_content_to_chat(resp, "g")
    assert ChatCompletion.model_validate(out).choices[0].finish_reason == expected
    assert "usage" not in out


def test_blocked_prompt_and_several_candidates() -> None:
    blocked = generate_content_to_chat(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage_meta()}, "g"
    )
    assert ChatCompletion.model_validate(blocked).choices[0].finish_reason == "content_filter"
    two = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
            {"content": {"role": "model", "parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
        ]
    }
    out = ChatCompletion.model_validate(generate_content_to_chat(two, "g"))
    assert [(c.index, c.message.content, c.finish_reason) for c in out.choices] == [
        (0, "a", "stop"),
        (1, "b", "length"),
    ]


# -------------------------------------------------------------- direction A: Gemini stream -> chat chunks


def text_fragment(text: str, finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {
        "candidates": [cand],
        "usageMetadata": usage or {"promptTokenCount": 12, "totalTokenCount": 12},
        "modelVersion": "gemini-2.0-flash",
        "responseId": "r1",
    }


def run_stream(fragments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = GeminiStreamToChat("gemini-2.0-flash")
    chunks = [c for f in fragments for c in translator.feed(f)] + translator.finish()
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert len({c["id"] for c in chunks}) == 1
    return chunks


def test_stream_text() -> None:
    fragments = [
        text_fragment("Hel"),
        text_fragment("lo"),
        text_fragment("!", "STOP", usage_meta(cachedContentTokenCount=4)),
    ]
    chunks = run_stream(fragments)
    assert [c["choices"][0]["delta"] if c["choices"] else c["usage"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {"content": "!"},
        {},
        {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    ]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["choices"] == []
    assert chunks[0]["id"] == "chatcmpl-r1" and chunks[0]["object"] == "chat.completion.chunk"
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    final = state.get_final_completion()
    assert final.choices[0].message.content == "Hello!" and final.usage and final.usage.total_tokens == 17


def test_stream_function_call() -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    fragment = {
        "candidates": [{"content": {"parts": [call], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage_meta(),
    }
    chunks = run_stream([fragment])
    delta = chunks[1]["choices"][0]["delta"]
    assert delta == {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]
    }
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(input_tools=[WEATHER_TOOL])  # type: ignore[list-item]
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    tool_call = state.get_final_completion().choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


def test_stream_error_and_no_usage() -> None:
    translator = GeminiStreamToChat("g")
    assert len(translator.feed({"candidates": [{"content": {"parts": [{"text": "a"}], "role": "model"}}]})) == 2
    assert translator.finish() == []  # no usageMetadata seen: nothing to report
    error = {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}
    with pytest.raises(TranslationError) as exc:
        translator.feed(error)
    assert exc.value.status == 502 and exc.value.code == "upstream_stream_error" and "internal" in exc.value.message


# ------------------------------------------------------------------------------------------- embeddings


def test_embeddings_request() -> None:
    assert embeddings_to_batch_embed({"input": "hi", "dimensions": 4}, "text-embedding-004") == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 4}
        ]
    }
    out = embeddings_to_batch_embed({"input": ["a", "b"]}, "models/e")
    assert [r["model"] for r in out["requests"]] == ["models/e", "models/e"]
    assert "outputDimensionality" not in out["requests"][0]
    for bad, code in (
        ([1, 2, 3], "unsupported_input"),
        ([[1], [2]], "unsupported_input"),
        ([], "invalid_request"),
        (["a", ""], "invalid_request"),
    ):
        with pytest.raises(TranslationError) as exc:
            embeddings_to_batch_embed({"input": bad}, "e")
        assert exc.value.code == code and exc.value.param == "input"


def test_embeddings_response_float_and_base64() -> None:
    values = [[0.25, -1.5, 3.0], [0.1, 0.2, 0.3]]
    resp = {"embeddings": [{"values": v} for v in values]}
    floats = batch_embed_to_embeddings(resp, "text-embedding-004", "float", 7)
    parsed = CreateEmbeddingResponse.model_validate(floats)
    assert parsed.data[0].embedding == values[0] and parsed.usage.prompt_tokens == 7 and parsed.usage.total_tokens == 7
    encoded = batch_embed_to_embeddings(resp, "text-embedding-004", "base64", 7)
    decoded = [list(struct.unpack("<3f", base64.b64decode(d["embedding"]))) for d in encoded["data"]]
    assert decoded[0] == values[0]  # exact float32 values
    assert decoded[1] == pytest.approx(values[1], rel=1e-6)
    assert [d["index"] for d in encoded["data"]] == [0, 1] and encoded["object"] == "list"
    with pytest.raises(TranslationError) as exc:
        batch_embed_to_embeddings({}, "e", "float", 1)
    assert exc.value.status == 502


# ------------------------------------------------------ direction B: Gemini request -> OpenAI chat request


SDK_REQUEST = {  # what google-genai sends (camelCase, uppercase schema types, systemInstruction role user)
    "contents": [
        {
            "parts": [{"text": "weather in Paris?"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}],
            "role": "user",
        },
        {
            "parts": [
                {"text": "let me check", "thought": True},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}},
            ],
            "role": "model",
        },
        {
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
            ],
            "role": "user",
        },
    ],
    "systemInstruction": {"parts": [{"text": "be brief"}], "role": "user"},
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING", "nullable": True}},
                        "required": ["city"],
                        "propertyOrdering": ["city"],
                    },
                }
            ]
        }
    ],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {
        "temperature": 0.3,
        "topP": 0.8,
        "topK": 40,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "candidateCount": 1,
        "seed": 3,
    },
}


def test_request_to_chat() -> None:
    out = generate_content_request_to_chat(SDK_REQUEST, "gpt-4o-mini")
    assert out["model"] == "gpt-4o-mini"
    assert out["messages"] == [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather in Paris?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 20}'},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": ["string", "null"]}},
                    "required": ["city"],
                },
            },
        }
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert {k: out[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed")} == {
        "temperature": 0.3,
        "top_p": 0.8,
        "max_tokens": 64,
        "stop": ["END"],
        "seed": 3,
    }
    assert "top_k" not in out and "topK" not in out and "n" not in out  # candidateCount 1 is the default
    two = generate_content_request_to_chat({**SDK_REQUEST, "generationConfig": {"candidateCount": 2}}, "m")
    assert two["n"] == 2


def test_request_to_chat_snake_case_and_json() -> None:
    body = {
        "system_instruction": {"parts": {"text": "sys"}},
        "contents": [{"parts": [{"text": "hi"}]}],
        "generation_config": {"response_mime_type": "application/json", "max_output_tokens": 5},
    }
    out = generate_content_request_to_chat(body, "m")
    assert out["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert out["response_format"] == {"type": "json_object"} and out["max_tokens"] == 5
    schema = {"type": "ARRAY", "items": {"type": "STRING"}}
    out = generate_content_request_to_chat(
        {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"responseSchema": schema}}, "m"
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "array", "items": {"type": "string"}}},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"contents": []}, "contents"),
        ({}, "contents"),
        (
            {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "contents[0].parts[0]",
        ),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}, "tools[0]"),
    ],
)
def test_request_to_chat_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as exc:
        generate_content_request_to_chat(body, "m")
    assert exc.value.param == param and exc.value.status == 400


def test_round_trip_chat_gemini_chat() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
    ]
    gemini = chat_to_generate_content({"messages": messages, "tools": [WEATHER_TOOL], "tool_choice": "auto"})
    back = generate_content_request_to_chat(gemini, "m")
    assert back["messages"] == messages
    assert back["tool_choice"] == "auto"
    assert back["tools"][0]["function"]["parameters"]["properties"]["unit"] == {
        "type": ["string", "null"],
        "enum": ["c", "f"],
    }


# ----------------------------------------------------- direction B: OpenAI reply -> GenerateContentResponse


def chat_completion(message: dict[str, Any], finish: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "logprobs": None, "finish_reason": finish}
        ],
        "usage": usage
        or {
            "prompt_tokens": 10,
            "completion_tokens": 6,
            "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }


def test_completion_to_gemini_text() -> None:
    out = chat_to_generate_content_response(chat_completion({"content": "Hello"}, "stop"), "gpt-4o-mini")
    assert out == {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Hello"}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 4,
            "totalTokenCount": 16,
            "thoughtsTokenCount": 2,
            "cachedContentTokenCount": 4,
        },
        "modelVersion": "gpt-4o-mini",
        "responseId": "chatcmpl-1",
    }
    parsed = gt.GenerateContentResponse.model_validate(out)
    assert parsed.text == "Hello" and parsed.usage_metadata and parsed.usage_metadata.cached_content_token_count == 4


def test_completion_to_gemini_tool_calls_and_finish_reasons() -> None:
    calls = [
        {"id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_y", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    out = chat_to_generate_content_response(chat_completion({"content": None, "tool_calls": calls}, "tool_calls"), "m")
    parsed = gt.GenerateContentResponse.model_validate(out)
    assert [(c.name, c.args) for c in parsed.function_calls or []] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert out["candidates"][0]["finishReason"] == "STOP"
    for reason, expected in (("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), ("weird", "OTHER")):
        got = chat_to_generate_content_response(chat_completion({"content": "x"}, reason), "m")
        assert gt.GenerateContentResponse.model_validate(got).candidates[0].finish_reason == expected  # type: ignore[index]
    bad = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]
    got = chat_to_generate_content_response(chat_completion({"content": None, "tool_calls": bad}, "tool_calls"), "m")
    assert got["candidates"][0] == {"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}


# ------------------------------------------------------ direction B: OpenAI chunks -> Gemini stream fragments


def chunk(
    delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    out["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    if usage:
        out["usage"] = usage
    return out


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def run_gemini_stream(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    translator = ChatStreamToGemini("gpt-4o-mini")
    fed = [f for c in chunks for f in translator.feed(c)]
    tail = translator.finish()
    for fragment in fed + tail:
        gt.GenerateContentResponse.model_validate(fragment)
    return fed, tail


def test_chat_stream_to_gemini_text() -> None:
    chunks = [
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"content": "Hello"}),
        chunk({"content": " there"}),
        chunk({}, "stop"),
        chunk(None, usage=USAGE),
    ]
    fed, tail = run_gemini_stream(chunks)
    assert tail == []  # the usage chunk closed the stream already
    texts = [gt.GenerateContentResponse.model_validate(f).text for f in fed[:-1]]
    assert texts == ["Hello", " there"]
    assert fed[-1] == {
        "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
        "modelVersion": "gpt-4o-mini",
        "responseId": "chatcmpl-9",
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12},
    }


def test_chat_stream_to_gemini_tool_call_accumulates() -> None:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    pieces = ['{"', "city", '": "', "Paris", '"}']
    chunks = [chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
    chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
    chunks.append(chunk({}, "tool_calls"))
    fed, tail = run_gemini_stream(chunks)  # no usage chunk: finish() closes
    assert fed == []
    [last] = tail
    parsed = gt.GenerateContentResponse.model_validate(last)
    assert parsed.function_calls and parsed.function_calls[0].args == {"city": "Paris"}
    assert last["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" not in last


def test_chat_stream_to_gemini_error() -> None:
    translator = ChatStreamToGemini("m")
    with pytest.raises(TranslationError) as exc:
        translator.feed({"error": {"message": "boom", "type": "server_error"}})
    assert exc.value.status == 502 and exc.value.code == "upstream_stream_error"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (402, "FAILED_PRECONDITION"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
def test_error_body(status: int, name: str) -> None:
    assert error_body(status, "nope") == {"error": {"code": status, "message": "nope", "status": name}}
