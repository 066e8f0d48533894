"""POST /v1/responses against OpenAI's schema, whole and streamed: passed through from the OpenAI stand-in,
and built by the gateway (translated from chat) for the Anthropic, Gemini and mock providers. Every stream
event is judged by the schema its `type` names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conformance.cases import BREAK_STREAM, responses_body
from tests.conformance.client import ConformanceClient, Stream
from tests.support.front_doors import HTTP_KINDS, KINDS

TRANSLATED = ("anthropic", "gemini", "mock")
# The OpenAI stand-in (tests/upstreams/openai_upstream.py) answers without two fields the pinned schema
# requires, and the gateway passes its answer through untouched: the stand-in's to fix, not the gateway's.
STANDIN_USAGE_GAP = "usage.input_tokens_details: 'cache_write_tokens' is a required property"
STANDIN_TOOL_GAP = "tools[0]: 'strict' is a required property"
ECHOED: dict[str, Any] = {  # request settings a Response echoes back
    "instructions": "Answer briefly.",
    "temperature": 0.5,
    "top_p": 0.9,
    "metadata": {"trace": "conformance"},
    "user": "user-1",
    "tool_choice": "auto",
    "text": {
        "format": {
            "type": "json_schema",
            "name": "answer",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            "strict": True,
        }
    },
}


def _excused(kind: str, tools: bool) -> set[str]:
    """The stand-in's gaps a finished pass-through answer shows (none when the gateway built the answer)."""
    if kind != "openai":
        return set()
    return {STANDIN_USAGE_GAP, STANDIN_TOOL_GAP} if tools else {STANDIN_USAGE_GAP}


def _assert_well_sequenced(stream: Stream) -> None:
    """Each SSE event is named after its payload's `type`, numbered 0, 1, 2, … in order."""
    assert [event.name for event in stream.events] == [payload["type"] for payload in stream.payloads]
    assert [payload["sequence_number"] for payload in stream.payloads] == list(range(len(stream.payloads)))


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_response_conforms(api: ConformanceClient, kind: str, tools: bool) -> None:
    response = api.json("POST", "/responses", responses_body(kind, tools), excused=_excused(kind, tools))
    assert [item["type"] for item in response["output"]] == ["function_call" if tools else "message"]
    assert response["status"] == "completed" and response["usage"]["cost"] > 0


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_event_of_a_response_stream_conforms(api: ConformanceClient, kind: str, tools: bool) -> None:
    stream = api.stream("/responses", responses_body(kind, tools, stream=True), excused=_excused(kind, tools))
    _assert_well_sequenced(stream)
    types = [payload["type"] for payload in stream.payloads]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    expected = "response.function_call_arguments.done" if tools else "response.content_part.done"
    assert expected in types
    created = stream.payloads[0]["response"]
    assert created["usage"] is None and created["status"] == "in_progress"


@pytest.mark.parametrize("kind", TRANSLATED)
def test_echoed_settings_conform_whole_and_streamed(api: ConformanceClient, kind: str) -> None:
    response = api.json("POST", "/responses", responses_body(kind, **ECHOED))
    assert {key: response[key] for key in ECHOED} == {**ECHOED, "text": {**ECHOED["text"], "verbosity": "medium"}}
    stream = api.stream("/responses", responses_body(kind, stream=True, **ECHOED))
    _assert_well_sequenced(stream)


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_a_response_cut_by_max_output_tokens_is_incomplete_and_conforms(api: ConformanceClient, kind: str) -> None:
    body = responses_body(kind, max_output_tokens=2)
    response = api.json("POST", "/responses", body)
    assert (response["status"], response["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    stream = api.stream("/responses", {**body, "stream": True})
    assert stream.payloads[-1]["type"] == "response.incomplete"


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_broken_stream_ends_with_events_that_conform(
    api: ConformanceClient, misbehave: Callable[..., None], kind: str
) -> None:
    misbehave(kind, **BREAK_STREAM[kind])
    stream = api.stream("/responses", responses_body(kind, stream=True))  # no usage: it never finishes
    types = [payload["type"] for payload in stream.payloads]
    assert "error" in types and "response.completed" not in types
    if kind != "openai":  # the gateway closes a translated stream with the failed response
        assert types[-2:] == ["error", "response.failed"]
