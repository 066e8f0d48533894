"""POST /v1/chat/completions against OpenAI's schema: passed through from the OpenAI stand-in, built by the
gateway from Anthropic and Gemini answers, and built by the mock; text and tool calls, whole and streamed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conformance.cases import BREAK_STREAM, chat_body
from tests.conformance.client import ConformanceClient
from tests.support.front_doors import HTTP_KINDS, KINDS

USAGE = {"stream": True, "stream_options": {"include_usage": True}}


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_chat_completion_conforms(api: ConformanceClient, kind: str, tools: bool) -> None:
    completion = api.json("POST", "/chat/completions", chat_body(kind, tools))
    message = completion["choices"][0]["message"]
    assert bool(message.get("tool_calls")) is tools
    assert completion["usage"]["cost"] > 0


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_chunk_of_a_chat_stream_conforms_usage_chunk_included(
    api: ConformanceClient, kind: str, tools: bool
) -> None:
    stream = api.stream("/chat/completions", chat_body(kind, tools, **USAGE))
    assert stream.done
    *chunks, usage = stream.payloads
    assert any(choice["delta"].get("tool_calls") for chunk in chunks for choice in chunk["choices"]) is tools
    assert usage["choices"] == [] and usage["usage"]["cost"] > 0


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_chat_stream_broken_upstream_ends_with_an_error_body_that_conforms(
    api: ConformanceClient, misbehave: Callable[..., None], kind: str
) -> None:
    misbehave(kind, **BREAK_STREAM[kind])
    stream = api.events("/chat/completions", chat_body(kind, **USAGE))
    assert not stream.done
    *chunks, error = stream.payloads
    for chunk in chunks:
        api.spec.check("CreateChatCompletionStreamResponse", chunk)
    api.spec.check("ErrorResponse", error)


def test_the_usage_chunk_conforms_when_the_upstream_sent_none(
    api: ConformanceClient, misbehave: Callable[..., None]
) -> None:
    misbehave("openai", omit_usage=True)
    api.stream("/chat/completions", chat_body("openai", **USAGE))
