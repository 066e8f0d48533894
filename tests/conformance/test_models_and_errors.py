"""GET /v1/models and /v1/models/{id}, and the error bodies of every kind of refusal, against OpenAI's schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conformance.cases import chat_body, responses_body
from tests.conformance.client import ConformanceClient
from tests.support.front_doors import KINDS, model_of


def test_the_model_list_and_every_model_conform(api: ConformanceClient) -> None:
    listing = api.json("GET", "/models")
    ids = [model["id"] for model in listing["data"]]
    assert {model_of(kind) for kind in KINDS} <= set(ids)
    for model_id in ids:
        model = api.json("GET", f"/models/{model_id}")
        assert {"pricing", "capabilities", "context_window", "latency"} <= set(model)  # our extensions ride along


TOO_LARGE = {**chat_body("mock"), "messages": [{"role": "user", "content": "x" * 70_000}]}  # the limit is 64 KiB
NOT_JSON = {"content": b"{nope", "headers": {"content-type": "application/json"}}
BAD_KEY = {"headers": {"authorization": "Bearer gw_live_nope"}}
REFUSALS: dict[str, tuple[str, str, int, Any, dict[str, Any]]] = {  # id: method, path, status, body, httpx options
    "invalid_api_key": ("POST", "/chat/completions", 401, chat_body("mock"), BAD_KEY),
    "model_not_found": ("POST", "/chat/completions", 404, chat_body("mock", model="no-such-model"), {}),
    "model_not_found_on_retrieve": ("GET", "/models/no-such-model", 404, None, {}),
    "invalid_json": ("POST", "/chat/completions", 400, None, NOT_JSON),
    "request_too_large": ("POST", "/chat/completions", 413, TOO_LARGE, {}),
    "unsupported_parameter": ("POST", "/responses", 400, responses_body("mock", previous_response_id="resp_1"), {}),
    "model_not_supported": ("POST", "/embeddings", 400, {"model": model_of("anthropic"), "input": "x"}, {}),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_request_gets_an_error_body_that_conforms(
    api: ConformanceClient, case: tuple[str, str, int, Any, dict[str, Any]]
) -> None:
    method, path, status, body, options = case
    api.error(method, path, status, body, **options)


@pytest.mark.parametrize(
    ("kind", "path", "body"),
    [("openai", "/chat/completions", chat_body("openai")), ("anthropic", "/responses", responses_body("anthropic"))],
)
def test_an_upstream_failure_gets_an_error_body_that_conforms(
    api: ConformanceClient, misbehave: Callable[..., None], kind: str, path: str, body: dict[str, Any]
) -> None:
    misbehave(kind, status=500)
    error = api.error("POST", path, 502, body)
    assert error["error"]["code"] == "upstream_error"
