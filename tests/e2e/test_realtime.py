"""Realtime end to end: real `gatewayctl serve` processes, the openai SDK's realtime client and a raw
`websockets` client, the mock provider's realtime peer and a stand-in OpenAI realtime upstream on 127.0.0.1.

One gateway and one stand-in serve the module (a project per test keeps their money apart); the crash and
stop tests run their own gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.gateway import GatewayProcess
from tests.upstreams.asgi_kit import UpstreamProcess, start_upstream_process
from tests.upstreams.openai_realtime import MODULE, expected_audio, expected_text

PROVIDER_KEY = "sk-standin-provider-key-0001"
PRICES = "price = { input = 100, output = 100, audio_input = 200, audio_output = 400, cached_input = 10 }"


def config(upstream: UpstreamProcess) -> str:
    return f"""
[realtime]
write_timeout_s = 2
cancel_wait_s = 1
idle_timeout_s = 3

[plans.default]
rpm = {{ chat = 100000, realtime = 100000 }}

[plans.one-session]
rpm = {{ realtime = 100000 }}
realtime_sessions_per_key = 1

[plans.two-a-minute]
rpm = {{ realtime = 2 }}

[[providers]]
name = "mock"
kind = "mock"

[[providers]]
name = "standin"
kind = "openai"
base_url = "{upstream.base_url}"
api_key_env = "STANDIN_REALTIME_KEY"

[[models]]
name = "gpt-realtime"
targets = ["mock:gpt-realtime"]
{PRICES}
capabilities = ["realtime"]
context_window = 1000

[[models]]
name = "up-realtime"
targets = ["standin:gpt-realtime"]
{PRICES}
capabilities = ["realtime"]
context_window = 1000

[[models]]
name = "fallback-realtime"
targets = ["standin:gpt-realtime", "mock:gpt-realtime"]
{PRICES}
capabilities = ["realtime"]
context_window = 1000
"""


@dataclass
class Realtime:
    gw: GatewayProcess
    up: UpstreamProcess

    @property
    def ws_url(self) -> str:
        return self.gw.url.replace("http://", "ws://") + "/v1/realtime"

    def project(self, name: str, credit: str = "10", plan: str | None = None) -> str:
        """A prepaid project with `credit` in its wallet, and a key for it."""
        args = ["projects", "create", name, "--billing", "prepaid", *(["--plan", plan] if plan else [])]
        self.gw.cli_json(*args)
        self.gw.cli_json("wallet", "credit", "--project", name, "--amount", credit, "--reason", "test")
        return str(self.gw.cli_json("keys", "create", "--project", name)["key"])

    def balance(self, project: str) -> int:
        return int(self.gw.cli_json("wallet", "balance", "--project", project)["balance_micro"])

    def request(self, request_id: str) -> dict[str, Any]:
        return dict(self.gw.cli_json("requests", "show", request_id, "--no-bodies"))


@contextlib.contextmanager
def running(folder: Path, server_extra: str = "") -> Iterator[Realtime]:
    """A stand-in realtime upstream and a gateway in front of it, both stopped on the way out."""
    up = start_upstream_process(module=MODULE)
    gw: GatewayProcess | None = None
    try:
        gw = GatewayProcess(folder, config(up), {"STANDIN_REALTIME_KEY": PROVIDER_KEY}, server_extra)
        gw.start()
        yield Realtime(gw, up)
    finally:
        if gw is not None:
            gw.stop()
        up.stop()


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realtime]:
    with running(tmp_path_factory.mktemp("realtime")) as started:
        yield started


@pytest.fixture()
def fresh(rt: Realtime) -> Realtime:
    rt.up.clear()
    return rt


async def _open(url: str, key: str, model: str, **kw: Any) -> ClientConnection:
    protocols = ["realtime", f"openai-insecure-api-key.{key}"]
    return await connect(f"{url}?model={model}", subprotocols=protocols, max_size=None, open_timeout=10, **kw)  # type: ignore[list-item]


async def _send(ws: ClientConnection, kind: str, **fields: Any) -> None:
    await ws.send(json.dumps({"type": kind, **fields}))


async def _until(ws: ClientConnection, kind: str, timeout: float = 10) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Events up to and including the first of `kind`."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await ws.recv())
            seen.append(event)
            if event["type"] == kind:
                return event, seen


def _say(text: str) -> dict[str, Any]:
    return {"item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


def test_sdk_text_round_trip_through_the_mock(fresh: Realtime) -> None:
    key = fresh.project("sdk-text")

    async def run() -> tuple[str, Any]:
        client = AsyncOpenAI(base_url=f"{fresh.gw.url}/v1", api_key=key)
        text = ""
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await conn.conversation.item.create(**_say("hello gateway"))  # type: ignore[arg-type]
            await conn.response.create()
            async for event in conn:
                if event.type == "response.output_text.delta":
                    text += event.delta
                if event.type == "response.done":
                    return text, event.response.usage
        raise AssertionError("no response.done")

    text, usage = asyncio.run(run())
    assert text == "Mock reply: hello gateway"
    assert usage is not None and usage.output_tokens == 4
    assert getattr(usage, "cost", None) and float(usage.cost) > 0  # usage.cost (credits) added by the gateway


def test_raw_client_with_subprotocol_auth_reaches_the_upstream_with_our_key_only(fresh: Realtime) -> None:
    key = fresh.project("raw-subprotocol")

    async def run() -> tuple[str | None, str | None, str]:
        ws = await _open(fresh.ws_url, key, "up-realtime")
        async with ws:
            await _until(ws, "session.created")
            await _send(ws, "session.update", session={"type": "realtime", "output_modalities": ["text"]})
            await _send(ws, "conversation.item.create", **_say("ping"))
            await _send(ws, "response.create")
            _, events = await _until(ws, "response.done")
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        return ws.subprotocol, ws.response.headers.get("x-request-id"), text

    subprotocol, session_id, text = asyncio.run(run())
    assert subprotocol == "realtime"  # never the one carrying the key
    assert text == expected_text("ping")
    received = fresh.up.received()
    assert len(received) == 1 and received[0]["path"] == "/v1/realtime" and "model=gpt-realtime" in received[0]["query"]
    headers = received[0]["headers"]
    assert headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert key not in json.dumps(received)  # the client's key never reaches the upstream
    assert "response.create" in received[0]["events"]
    assert session_id is not None
    shown = fresh.request(session_id)
    assert shown["id"] == session_id and shown["endpoint"] == "realtime" and shown["status"] == "ok"
    assert [r["status"] for r in shown["responses"]] == ["ok"]


def test_audio_deltas_pass_through_byte_exact(fresh: Realtime) -> None:
    key = fresh.project("audio-exact")
    fresh.up.set_behavior(audio_chunks=6, chunk_bytes=9600)

    async def run() -> list[str]:
        ws = await _open(fresh.ws_url, key, "up-realtime")
        async with ws:
            await _send(ws, "conversation.item.create", **_say("sing"))
            await _send(ws, "response.create")
            _, events = await _until(ws, "response.done")
        return [e["delta"] for e in events if e["type"] == "response.output_audio.delta"]

    deltas = asyncio.run(run())
    assert deltas == [expected_audio(1, i, 9600) for i in range(6)]


def test_three_responses_make_three_usage_rows_and_debits_equal_to_the_wallet_change(fresh: Realtime) -> None:
    key = fresh.project("three")
    before = fresh.balance("three")

    async def run() -> tuple[str, list[float]]:
        ws = await _open(fresh.ws_url, key, "gpt-realtime")
        costs = []
        async with ws:
            for n in range(3):
                await _send(ws, "conversation.item.create", **_say(f"question {n}"))
                await _send(ws, "response.create")
                done, _ = await _until(ws, "response.done")
                costs.append(float(done["response"]["usage"]["cost"]))
        return ws.response.headers["x-request-id"], costs

    session_id, costs = asyncio.run(run())
    time.sleep(0.3)  # the session's own row closes after the socket does
    shown = fresh.request(session_id)
    responses = shown["responses"]
    assert len(responses) == 3 and all(r["status"] == "ok" and r["cost_micro"] > 0 for r in responses)
    assert [r["cost_micro"] for r in responses] == [round(c * 1_000_000) for c in costs]
    history = fresh.gw.cli_json("wallet", "history", "--project", "three")
    debits = [e for e in history if e["kind"] == "usage"]
    assert sorted(e["source_id"] for e in debits) == sorted(r["id"] for r in responses)  # one debit per response
    assert (
        before - fresh.balance("three")
        == sum(r["cost_micro"] for r in responses)
        == -sum(e["amount_micro"] for e in debits)
    )
    assert shown["cost_micro"] is None  # the session's own row carries no money
    one = fresh.gw.cli_json("requests", "show", responses[0]["id"])
    assert one["bodies"]["request"]["type"] == "response.create" and one["bodies"]["response"]["usage"]
    usage = httpx.get(f"{fresh.gw.url}/v1/usage", headers={"authorization": f"Bearer {key}"}).json()["data"]
    assert [(row["requests"], row["cost_micro"]) for row in usage] == [(3, before - fresh.balance("three"))]


def test_budget_exhausted_mid_session_refuses_the_response_create_and_keeps_the_session(fresh: Realtime) -> None:
    key = fresh.project("exhausted", credit="0.15")  # 100 per 1M tokens: a 100-token cap fits, 4096 does not

    async def run() -> tuple[dict[str, Any], str]:
        ws = await _open(fresh.ws_url, key, "up-realtime")
        async with ws:
            await _send(ws, "session.update", session={"type": "realtime", "output_modalities": ["text"]})
            await _send(ws, "conversation.item.create", **_say("first"))
            await _send(ws, "response.create", response={"max_output_tokens": 100})
            await _until(ws, "response.done")
            await _send(ws, "response.create", event_id="evt_big", response={"max_output_tokens": 4096})
            error, _ = await _until(ws, "error")
            await _send(ws, "response.create", response={"max_output_tokens": 50})  # still open, still served
            done, _ = await _until(ws, "response.done")
        return error, done["type"]

    error, last = asyncio.run(run())
    assert error["error"]["code"] == "insufficient_quota" and error["error"]["event_id"] == "evt_big"
    assert error["error"]["type"] == "insufficient_quota"
    assert last == "response.done"
    events = fresh.up.received()[0]["events"]
    assert events.count("response.create") == 2  # the refused one never went upstream


def test_a_bad_key_is_refused_with_401_before_the_handshake(fresh: Realtime) -> None:
    async def status_of(key: str, model: str = "gpt-realtime") -> tuple[int, dict[str, Any]]:
        try:
            ws = await _open(fresh.ws_url, key, model)
        except InvalidStatus as exc:
            return exc.response.status_code, json.loads(exc.response.body or b"{}")
        await ws.close()
        return 101, {}

    status, body = asyncio.run(status_of("gw_live_not-a-real-key"))
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    key = fresh.project("refusals")
    status, body = asyncio.run(status_of(key, "no-such-model"))
    assert status == 404 and body["error"]["code"] == "model_not_found"
    chat_only = fresh.gw.cli_json("keys", "create", "--project", "refusals", "--endpoints", "chat")["key"]
    status, body = asyncio.run(status_of(chat_only))
    assert status == 403 and body["error"]["code"] == "endpoint_not_allowed"
    assert fresh.up.received() == []  # nothing went upstream


def test_the_route_is_also_served_under_api_v1(fresh: Realtime) -> None:
    key = fresh.project("api-v1")

    async def run() -> str:
        url = fresh.ws_url.replace("/v1/realtime", "/api/v1/realtime")
        async with await _open(url, key, "gpt-realtime") as ws:
            event, _ = await _until(ws, "session.created")
            return str(event["type"])

    assert asyncio.run(run()) == "session.created"


def test_a_plan_limits_sessions_per_key(fresh: Realtime) -> None:
    key = fresh.project("one-session", plan="one-session")

    async def run() -> int:
        first = await _open(fresh.ws_url, key, "gpt-realtime")
        async with first:
            try:
                second = await _open(fresh.ws_url, key, "gpt-realtime")
            except InvalidStatus as exc:
                return exc.response.status_code
            await second.close()
        return 101

    assert asyncio.run(run()) == 429


def test_the_plan_limits_response_creates_per_minute(fresh: Realtime) -> None:
    key = fresh.project("two-a-minute", plan="two-a-minute")

    async def run() -> dict[str, Any]:
        async with await _open(fresh.ws_url, key, "gpt-realtime") as ws:
            for _ in range(2):
                await _send(ws, "response.create", response={"max_output_tokens": 20})
                await _until(ws, "response.done")
            await _send(ws, "response.create", event_id="evt_third")
            error, _ = await _until(ws, "error")
            return error

    error = asyncio.run(run())
    assert error["error"]["code"] == "rate_limit_exceeded" and error["error"]["event_id"] == "evt_third"


def test_a_client_that_leaves_mid_response_pays_what_the_upstream_reports(fresh: Realtime) -> None:
    key = fresh.project("leaver")
    fresh.up.set_behavior(audio_chunks=100, chunk_bytes=4800, chunk_delay_ms=20)

    async def run() -> str:
        ws = await _open(fresh.ws_url, key, "up-realtime")
        await _send(ws, "response.create")
        got = 0
        while got < 5:
            got += json.loads(await ws.recv())["type"] == "response.output_audio.delta"
        await ws.close()
        return ws.response.headers["x-request-id"]

    session_id = asyncio.run(run())
    deadline = time.monotonic() + 5
    while (shown := fresh.request(session_id))["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
    [response] = shown["responses"]
    assert shown["status"] == "ok" and response["status"] == "client_disconnected"
    assert response["cost_micro"] > 0 and not response["estimated"]  # the usage the upstream reported on cancel
    assert "response.cancel" in fresh.up.received()[0]["events"]
    assert fresh.up.sent()[-1] < 100  # the upstream stopped


def test_a_revoked_key_closes_its_open_session_within_a_second(fresh: Realtime) -> None:
    key = fresh.project("revoked")
    key_id = fresh.gw.cli_json("keys", "list", "--project", "revoked")[0]["id"]

    async def run() -> tuple[float, dict[str, Any], int | None]:
        ws = await _open(fresh.ws_url, key, "gpt-realtime")
        await _until(ws, "session.created")
        admin = {"authorization": f"Bearer {fresh.gw.admin_token}"}
        async with httpx.AsyncClient(base_url=f"{fresh.gw.url}/admin/v1", headers=admin) as http:
            started = time.monotonic()
            (await http.post(f"/keys/{key_id}/revoke")).raise_for_status()
        error, _ = await _until(ws, "error", timeout=5)
        try:
            async with asyncio.timeout(5):
                await ws.recv()
        except ConnectionClosed:
            pass
        return time.monotonic() - started, error, ws.close_code

    elapsed, error, code = asyncio.run(run())
    assert error["error"]["code"] == "key_revoked"
    assert code == 1008
    assert elapsed < 1.0, f"the session closed {elapsed:.2f} s after the revocation"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_stops_reading_is_cut_off_and_server_memory_stays_bounded(fresh: Realtime) -> None:
    key = fresh.project("slow-reader")
    chunks, size = 2000, 48_000  # ~128 MB of base64 audio on offer
    fresh.up.set_behavior(audio_chunks=chunks, chunk_bytes=size)
    assert fresh.gw.proc is not None
    pid = fresh.gw.proc.pid
    before = _rss_kib(pid)
    admin = httpx.Client(
        base_url=f"{fresh.gw.url}/admin/v1", headers={"authorization": f"Bearer {fresh.gw.admin_token}"}
    )

    async def run() -> tuple[float, int, dict[str, Any]]:
        ws = await _open(fresh.ws_url, key, "up-realtime", max_queue=1)  # reads one event, then nothing
        session_id = ws.response.headers["x-request-id"]
        peak, row = 0, {}
        await _send(ws, "response.create")
        started = time.monotonic()
        while time.monotonic() - started < 20:  # bounded: the gateway must cut us off well before
            peak = max(peak, _rss_kib(pid))
            answer = admin.get(f"/requests/{session_id}", params={"bodies": "false"})
            row = answer.json() if answer.status_code == 200 else {"status": "pending"}  # intents commit lazily
            if row["status"] != "pending":
                break
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        ws.transport.abort()
        return elapsed, peak, row

    elapsed, peak, row = asyncio.run(run())
    sent = fresh.up.sent()
    print(f"slow reader: cut after {elapsed:.1f} s, server RSS +{(peak - before) // 1024} MiB, upstream sent {sent}")
    assert row["status"] == "client_disconnected" and row["error_code"] == "client_too_slow", row
    assert elapsed < 15, "the client that stopped reading was never disconnected"
    assert sent and sent[-1] < chunks / 2, f"the upstream was not paused: {sent}"
    assert peak - before < 48 * 1024, f"server memory grew by {(peak - before) // 1024} MiB"
    [response] = row["responses"]
    assert (response["status"], response["error_code"]) == ("client_disconnected", "client_too_slow")
    assert response["cost_micro"] > 0  # billed what the upstream reported once told to cancel


def test_an_upstream_that_drops_mid_response_ends_the_session_and_bills_what_was_delivered(fresh: Realtime) -> None:
    key = fresh.project("dropped")
    fresh.up.set_behavior(audio_chunks=10, chunk_bytes=4800, drop_after_deltas=6)

    async def run() -> tuple[str, dict[str, Any], int | None]:
        ws = await _open(fresh.ws_url, key, "up-realtime")
        async with ws:
            await _send(ws, "conversation.item.create", **_say("x"))
            await _send(ws, "response.create")
            error, _ = await _until(ws, "error")
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    await ws.recv()
        return ws.response.headers["x-request-id"], error, ws.close_code

    session_id, error, code = asyncio.run(run())
    assert error["error"]["code"] == "upstream_closed" and code == 1011
    time.sleep(0.3)
    shown = fresh.request(session_id)
    assert shown["status"] == "upstream_failed"
    [response] = shown["responses"]
    assert response["status"] == "upstream_failed" and response["estimated"] and response["cost_micro"] > 0


def test_fallback_happens_only_before_the_session_opens(fresh: Realtime) -> None:
    key = fresh.project("fallback")
    fresh.up.set_behavior(reject_status=503, times=1)

    async def run() -> str:
        ws = await _open(fresh.ws_url, key, "fallback-realtime")
        async with ws:
            await _send(ws, "session.update", session={"type": "realtime", "output_modalities": ["text"]})
            await _send(ws, "conversation.item.create", **_say("anyone"))
            await _send(ws, "response.create")
            await _until(ws, "response.done")
        return ws.response.headers["x-request-id"]

    session_id = asyncio.run(run())
    time.sleep(0.3)
    shown = fresh.request(session_id)
    assert [a["target"] for a in shown["attempts"]] == ["standin:gpt-realtime", "mock:gpt-realtime"]
    assert shown["provider"] == "mock"
    assert os.environ.get("STANDIN_REALTIME_KEY") is None  # the provider key lives in the gateway's env only


def test_an_idle_session_is_told_and_closed(fresh: Realtime) -> None:
    key = fresh.project("idle")

    async def run() -> tuple[dict[str, Any], int | None, float]:
        ws = await _open(fresh.ws_url, key, "gpt-realtime")
        await _until(ws, "session.created")
        started = time.monotonic()
        error, _ = await _until(ws, "error", timeout=10)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                await ws.recv()
        return error, ws.close_code, time.monotonic() - started

    error, code, elapsed = asyncio.run(run())
    assert error["error"]["code"] == "session_idle" and code == 1000
    assert 2.5 < elapsed < 6


def test_a_response_the_upstream_starts_on_its_own_is_metered_even_when_it_cannot_be_reserved(fresh: Realtime) -> None:
    key = fresh.project("vad", credit="0.000001")  # nothing can be reserved
    fresh.up.set_behavior(auto_response=True, audio_chunks=50, chunk_bytes=4800, chunk_delay_ms=20)

    async def run() -> tuple[str, list[dict[str, Any]]]:
        async with await _open(fresh.ws_url, key, "up-realtime") as ws:
            await _send(ws, "input_audio_buffer.append", audio=expected_audio(0, 0, 4800))
            await _send(ws, "input_audio_buffer.commit")
            _, events = await _until(ws, "response.done")
            return ws.response.headers["x-request-id"], events

    session_id, events = asyncio.run(run())
    errors = [e["error"]["code"] for e in events if e["type"] == "error"]
    assert errors == ["insufficient_quota"]
    assert "response.cancel" in fresh.up.received()[0]["events"]  # cancelled at once
    assert fresh.up.sent()[-1] < 50
    time.sleep(0.3)
    [response] = fresh.request(session_id)["responses"]
    assert response["cost_micro"] > 0  # what it used is billed all the same
