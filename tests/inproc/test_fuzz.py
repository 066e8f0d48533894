"""Bad input gets a 4xx, never a 5xx, on every route: bodies fuzzed by type (hypothesis), one field at a
time at any depth, against one in-process gateway; afterwards no request is left pending and no hold open."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import ipaddress
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inproc.harness import InProc, auth, running

WEBHOOK_SECRET = "whsec_fuzz_secret_0123456789"
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": (
        "/v1/chat/completions",
        {
            "model": "mock-chat",
            "messages": MESSAGES,
            "tools": TOOLS,
            "tool_choice": "auto",
            "max_tokens": 5,
            "n": 1,
            "stream": False,
            "stream_options": {"include_usage": True},
            "response_format": {"type": "text"},
            "temperature": 0.5,
            "stop": ["x"],
        },
    ),
    "embeddings": ("/v1/embeddings", {"model": "mock-embed", "input": ["a", "b"], "encoding_format": "float"}),
    "responses": (
        "/v1/responses",
        {
            "model": "mock-chat",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "instructions": "be brief",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "max_output_tokens": 5,
            "text": {"format": {"type": "text"}},
            "stream": False,
        },
    ),
    "messages": (
        "/v1/messages",
        {
            "model": "mock-chat",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "system": "be brief",
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"},
            "stream": False,
        },
    ),
    "gemini": (
        "/v1beta/models/mock-chat:generateContent",
        {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"maxOutputTokens": 5, "candidateCount": 1, "temperature": 0.1},
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}],
        },
    ),
    "admin_project": ("/admin/v1/projects", {"name": "p", "plan": None, "billing": "postpaid"}),
    "admin_key": ("/admin/v1/keys", {"project": "fuzz", "models": ["*"], "rpm": 5, "monthly_budget": "1"}),
    "admin_budget": ("/admin/v1/budgets", {"project": "fuzz", "monthly": "5"}),
    "admin_credit": ("/admin/v1/wallet/fuzz/credit", {"amount": "1", "reason": "r", "id": "x"}),
    "webhooks": (
        "/v1/webhooks/endpoints",
        {"url": "http://127.0.0.1:9/h", "events": ["key.revoked"], "description": ""},
    ),
    "admin_webhooks": (
        "/admin/v1/webhooks/endpoints",
        {"project": "fuzz", "url": "http://127.0.0.1:9/h", "events": ["wallet.recharged"], "description": "d"},
    ),
    "stripe": (
        "/stripe/webhook",
        {"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {"id": "cs_1", "amount_total": 5}}},
    ),
}
for _name in ("chat", "responses", "messages"):
    _path, _example = ROUTES[_name]
    ROUTES[f"{_name}_stream"] = (_path, {**_example, "stream": True})
ROUTES["gemini_stream"] = ("/v1beta/models/mock-chat:streamGenerateContent?alt=sse", ROUTES["gemini"][1])
MODELS = """
[[models]]
name = "mock-embed"
targets = ["mock:mock-embed"]
price = { input = 0.1 }
capabilities = ["embeddings"]
"""


async def _no_dns(host: str, port: int) -> list[str]:
    """An IP literal resolves to itself, a name to nothing: a fuzzed webhook URL never causes a DNS query."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return []


class Gateway:
    """One in-process gateway on a loop of its own thread, so hypothesis can drive it example by example."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.gw: InProc | None = None
        self.key = ""
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Gateway:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._main(), self._loop)
        assert self._ready.wait(30), "the in-process gateway did not start"
        return self

    async def _main(self) -> None:
        from tests.inproc.harness import BASE_CONFIG

        self._stop = asyncio.Event()
        async with running(self._directory, BASE_CONFIG + MODELS) as gw:
            self.gw = gw
            gw.gateway.webhooks.worker.resolver = _no_dns  # a fuzzed webhook URL never causes a DNS query
            await gw.project("fuzz")
            self.key = await gw.key("fuzz")
            self._ready.set()
            await self._stop.wait()

    def call(self, path: str, body: Any, *, admin: bool = False, headers: dict[str, str] | None = None) -> Any:
        assert self.gw is not None
        client = self.gw.admin if admin else self.gw.client
        content = json.dumps(body).encode()
        extra = headers or ({} if admin else auth(self.key))
        request = client.post(path, content=content, headers={"content-type": "application/json", **extra})
        return asyncio.run_coroutine_threadsafe(request, self._loop).result(60)

    def quiesce(self) -> None:
        assert self.gw is not None
        asyncio.run_coroutine_threadsafe(self.gw.quiesce(), self._loop).result(30)

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        time.sleep(0.2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    import os

    os.environ["STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    with Gateway(tmp_path_factory.mktemp("fuzz")) as gw:
        yield gw


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value can be replaced."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    mutated = copy.deepcopy(document)
    target = mutated
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return mutated


def _stripe_signature(payload: bytes) -> str:
    stamp = str(int(time.time()))
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(sorted(ROUTES)), pick=st.integers(min_value=0), value=JSON_VALUES, whole=st.booleans())
def test_no_body_of_the_wrong_shape_gets_a_5xx(
    gateway: Gateway, route: str, pick: int, value: Any, whole: bool
) -> None:
    path, example = ROUTES[route]
    places = _paths(example)
    body = value if whole and pick % 5 == 0 else _replace(example, places[pick % len(places)], value)
    if route == "stripe":
        payload = json.dumps(body).encode()
        answer = gateway.call(path, body, headers={"stripe-signature": _stripe_signature(payload)})
    else:
        answer = gateway.call(path, body, admin=route.startswith("admin"))
    assert answer.status_code < 500, (route, body, answer.status_code, answer.text[:300])


def test_after_the_fuzz_nothing_is_pending_or_held(gateway: Gateway) -> None:
    gateway.quiesce()
    assert gateway.gw is not None
    with sqlite3.connect(gateway.gw.database) as conn:
        pending = conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()[0]
        held = conn.execute("SELECT COUNT(*) FROM holds WHERE status = 'open'").fetchone()[0]
        internal = conn.execute("SELECT COUNT(*) FROM requests WHERE http_status >= 500").fetchone()[0]
    assert (pending, held, internal) == (0, 0, 0)
    assert gateway.gw.gateway.budgets.open_holds == 0


@pytest.mark.parametrize("query", ["since_ms=99999999999999999999", "since_ms=-1", "by=nothing", "since_ms=abc"])
def test_admin_query_parameters_out_of_range_are_400(gateway: Gateway, query: str) -> None:
    assert gateway.gw is not None
    request = gateway.gw.admin.get(f"/admin/v1/usage?{query}")
    answer = asyncio.run_coroutine_threadsafe(request, gateway._loop).result(30)
    assert answer.status_code == 400, answer.text
