"""The judge itself: it must fail a bad object, precisely, or the tier proves nothing. No gateway needed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conformance.schema import ERRATA, REFERENCE, Erratum, OpenAPI

MODEL = {"id": "via-mock", "object": "model", "created": 1700000000, "owned_by": "gateway"}
CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None}],
}
TEXT_PART = {"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}
PART_ADDED = {
    "type": "response.content_part.added",
    "sequence_number": 3,
    "item_id": "msg_1",
    "output_index": 0,
    "content_index": 0,
    "part": TEXT_PART,
}


def _without(instance: dict[str, Any], *path: str | int) -> dict[str, Any]:
    """A deep copy of `instance` with the field at `path` removed."""
    broken = copy.deepcopy(instance)
    holder: Any = broken
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return broken


def test_conforming_objects_pass(spec: OpenAPI) -> None:
    assert spec.problems("Model", MODEL) == []
    assert spec.problems("CreateChatCompletionStreamResponse", CHUNK) == []
    assert spec.problems("ResponseStreamEvent", PART_ADDED) == []


def test_a_missing_required_field_fails_and_is_named(spec: OpenAPI) -> None:
    assert spec.problems("Model", _without(MODEL, "owned_by")) == ["$: 'owned_by' is a required property"]
    error = {"error": {"message": "nope", "type": "invalid_request_error", "code": None}}
    assert spec.problems("ErrorResponse", error) == ["$.error: 'param' is a required property"]
    with pytest.raises(AssertionError, match="'param' is a required property"):
        spec.check("ErrorResponse", error)


def test_a_wrong_type_fails(spec: OpenAPI) -> None:
    assert spec.problems("Model", {**MODEL, "created": "yesterday"}) == [
        "$.created: 'yesterday' is not of type 'integer'"
    ]


def test_a_wrong_enum_value_fails(spec: OpenAPI) -> None:
    assert spec.problems("Model", {**MODEL, "object": "models"}) == ["$.object: 'models' is not one of ['model']"]
    chunk = copy.deepcopy(CHUNK)
    chunk["choices"][0]["finish_reason"] = "done"
    assert spec.problems("CreateChatCompletionStreamResponse", chunk) == [
        "$.choices[0].finish_reason: 'done' is not one of ['stop', 'length', 'tool_calls', 'content_filter', "
        "'function_call']"
    ]


def test_our_extensions_pass_where_extra_properties_are_allowed(spec: OpenAPI) -> None:
    extended = {**MODEL, "pricing": {"input": 3.0}, "capabilities": ["chat"], "context_window": 128000, "latency": None}
    assert spec.problems("Model", extended) == []
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "cost": 0.000033}
    assert spec.problems("CompletionUsage", usage) == []


def test_openapi_3_0_nullable_admits_null_where_declared_only(spec: OpenAPI) -> None:
    assert spec.problems("CreateChatCompletionStreamResponse", {**CHUNK, "usage": None}) == []
    assert spec.problems("Model", {**MODEL, "owned_by": None}) == ["$.owned_by: None is not of type 'string'"]


def test_stream_events_are_judged_by_the_schema_their_type_names(spec: OpenAPI) -> None:
    assert spec.member("ResponseStreamEvent", "response.content_part.added") == "ResponseContentPartAddedEvent"
    assert spec.problems("ResponseStreamEvent", _without(PART_ADDED, "part", "logprobs")) == [
        "$.part: 'logprobs' is a required property"
    ]
    unknown = spec.problems("ResponseStreamEvent", {**PART_ADDED, "type": "response.part.added"})
    assert len(unknown) == 1 and unknown[0].startswith("$.type: 'response.part.added' is not one of")
    with pytest.raises(AssertionError, match="no member"):
        spec.member("ResponseStreamEvent", "response.part.added")


def test_nested_unions_name_the_branch_at_fault(spec: OpenAPI) -> None:
    item = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "content": [TEXT_PART]}
    assert spec.problems("OutputItem", item) == []
    assert spec.problems("OutputItem", _without(item, "content", 0, "logprobs")) == [
        "$.content[0]: 'logprobs' is a required property"
    ]
    assert spec.problems("OutputItem", {**item, "status": "done"}) == [
        "$.status: 'done' is not one of ['in_progress', 'completed', 'incomplete']"
    ]


@pytest.mark.parametrize("erratum", ERRATA, ids=[f"{e.schema}.{e.prop}" for e in ERRATA])
def test_each_erratum_is_still_needed(spec: OpenAPI, erratum: Erratum) -> None:
    published = spec.validator_at(spec.unpatched[erratum.schema, erratum.prop])
    assert not published.is_valid(erratum.example)
    assert Draft202012Validator(erratum.also).is_valid(erratum.example)


def test_the_errata_widen_only_their_own_property(spec: OpenAPI) -> None:
    embedding = {"object": "embedding", "index": 0, "embedding": "AACAPw=="}
    assert spec.problems("Embedding", embedding) == []
    assert spec.problems("Embedding", {**embedding, "embedding": 1.0}) != []
    assert spec.problems("ResponseUsage", None) != []  # Response.usage may be null, a usage object may not be


def test_routes_map_to_the_schemas_the_document_gives_them(spec: OpenAPI) -> None:
    assert spec.route_schema("GET", "/models") == "ListModelsResponse"
    assert spec.route_schema("GET", "/models/{model}") == "Model"
    assert spec.route_schema("POST", "/chat/completions") == "CreateChatCompletionResponse"
    assert spec.route_schema("POST", "/chat/completions", "text/event-stream") == "CreateChatCompletionStreamResponse"
    assert spec.route_schema("POST", "/embeddings") == "CreateEmbeddingResponse"
    assert spec.route_schema("POST", "/responses", "text/event-stream") == "ResponseStreamEvent"


def test_the_committed_description_is_pinned_and_licensed() -> None:
    assert (REFERENCE / "VERSION").read_text().split()[0].isalnum()
    assert "MIT License" in (REFERENCE / "LICENSE").read_text()
