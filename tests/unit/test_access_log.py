"""The access log layer: one line per request, what the request path noted, and never a secret."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from server.api.access_log import access_log_middleware
from server.api.common import REQUEST_ID_SCOPE_KEY
from server.request_facts import note_cost, note_key, note_model


def _scope(path: str, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "query_string": query, "headers": []}


async def _call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await access_log_middleware(app)(scope, receive, send)
    return sent


def test_a_line_names_the_request_its_key_prefix_model_status_latency_and_cost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope[REQUEST_ID_SCOPE_KEY] = "req-1"
        note_key("gw_live_AbCd")
        note_model("gpt-4o-mini")
        note_cost(110)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    with caplog.at_level(logging.INFO, logger="gateway.access"):
        asyncio.run(_call(app, _scope("/v1/models/x:generateContent", b"key=gw_live_secret-in-query")))
    [record] = caplog.records
    line = record.getMessage()
    assert line.startswith("request=req-1 method=POST path=/v1/models/x:generateContent status=200")
    assert "key=gw_live_AbCd model=gpt-4o-mini latency_ms=" in line and line.endswith("cost=0.00011")
    assert "secret-in-query" not in line


def test_a_client_gone_before_any_answer_is_499_with_nothing_known(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise asyncio.CancelledError

    with caplog.at_level(logging.INFO, logger="gateway.access"), pytest.raises(asyncio.CancelledError):
        asyncio.run(_call(app, _scope("/v1/chat/completions")))
    [record] = caplog.records
    assert "status=499 key=- model=- " in record.getMessage() and record.getMessage().endswith("cost=-")


def test_notes_outside_a_request_go_nowhere() -> None:
    note_key("gw_live_AbCd")  # no access-log layer around: nothing to fill, nothing raised
    note_cost(1)
