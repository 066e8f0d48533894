"""Scopes, rate limits and budgets through the official openai SDK against a real gateway process."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process

MESSAGES = [{"role": "user", "content": "hello limits"}]

TRUSTED = 'trusted_proxies = ["127.0.0.0/8"]'
CONFIG = """
[limits]
ip_requests = 40
ip_window_seconds = 600

[plans.default]
rpm = {{ chat = 100000, embeddings = 100000 }}

[plans.tiny]
rpm = {{ chat = 3 }}

[[providers]]
name = "mock"
kind = "mock"

[[providers]]
name = "slow"
kind = "openai"
base_url = "{slow}"
api_key_env = "SLOW_KEY"
timeouts = {{ connect = 2, first_byte = 10, total = 20 }}

[[models]]
name = "gpt-4o-mini"
targets = ["mock:gpt-4o-mini"]
price = {{ input = 1.0, output = 2.0 }}

[[models]]
name = "gpt-4.1"
targets = ["mock:gpt-4.1"]
price = {{ input = 1.0, output = 2.0 }}

[[models]]
name = "mock-embed"
targets = ["mock:mock-embed"]
price = {{ input = 0.1 }}
capabilities = ["embeddings"]

[[models]]
name = "slow-chat"
targets = ["slow:slow-chat"]
price = {{ input = 0, output = 1.0 }}
"""


@pytest.fixture(scope="module")
def slow() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    up.set_behavior(delay_ms=700)  # every request of a burst is in flight at once
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(slow: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    directory: Path = tmp_path_factory.mktemp("limits")
    process = GatewayProcess(directory, CONFIG.format(slow=slow.base_url), {"SLOW_KEY": "sk-slow"}, TRUSTED).start()
    yield process
    process.stop()


_ip_counter = iter(range(1, 250))


def client_for(gw: GatewayProcess, key: str, ip: str | None = None) -> openai.OpenAI:
    """Each test speaks from its own client IP (via the trusted proxy) so the IP net stays per test."""
    forwarded = ip or f"10.77.{next(_ip_counter)}.9"
    return openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key=key, max_retries=0, default_headers={"x-forwarded-for": forwarded}
    )


def key_with(gw: GatewayProcess, project: str, *flags: str) -> dict[str, Any]:
    if project not in {p["name"] for p in gw.cli_json("projects", "list")}:
        gw.cli_json("projects", "create", project)
    return gw.cli_json("keys", "create", "--project", project, *flags)  # type: ignore[no-any-return]


def outbox(gw: GatewayProcess, event_type: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(gw.database)
    try:
        return conn.execute("SELECT id, payload FROM outbox WHERE event_type = ?", (event_type,)).fetchall()
    finally:
        conn.close()


def reset_seconds(value: str) -> float:
    """OpenAI's reset format: 20ms, 1.5s, 1m0s."""
    if value.endswith("ms"):
        return float(value[:-2]) / 1000
    minutes, _, seconds = value.rstrip("s").rpartition("m")
    return float(minutes or 0) * 60 + float(seconds)


def test_model_scope_with_wildcard(gw: GatewayProcess) -> None:
    client = client_for(gw, key_with(gw, "scopes", "--models", "gpt-4o*")["key"])
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-4.1", messages=MESSAGES)
    assert info.value.code == "model_not_allowed"
    assert "gpt-4.1" in info.value.message


def test_endpoint_scope(gw: GatewayProcess) -> None:
    client = client_for(gw, key_with(gw, "scopes", "--endpoints", "chat")["key"])
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.embeddings.create(model="mock-embed", input="x")
    assert info.value.code == "endpoint_not_allowed"


def test_ip_scope_through_trusted_proxy(gw: GatewayProcess) -> None:
    key = key_with(gw, "scopes", "--ip", "10.0.0.0/8")["key"]
    assert client_for(gw, key, "10.1.2.3").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    # the proxy appends the real peer: the right-most untrusted hop counts, not a spoofed left one
    spoofed = client_for(gw, key, "10.1.2.3, 192.168.7.7")
    with pytest.raises(openai.PermissionDeniedError) as info:
        spoofed.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.code == "ip_not_allowed"


def test_forwarded_for_is_not_trusted_from_an_untrusted_peer(tmp_path: Path) -> None:
    config = CONFIG.format(slow="http://127.0.0.1:9/v1")
    other = GatewayProcess(tmp_path, config, {}, 'trusted_proxies = ["192.0.2.0/24"]').start()
    try:
        key = key_with(other, "scopes", "--ip", "10.0.0.0/8")["key"]
        with pytest.raises(openai.PermissionDeniedError) as info:
            client_for(other, key, "10.1.2.3").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert info.value.code == "ip_not_allowed"
    finally:
        other.stop()


def test_expired_key_is_refused(gw: GatewayProcess) -> None:
    client = client_for(gw, key_with(gw, "scopes", "--expires", "2020-01-01")["key"])
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.code == "key_expired"


def test_rotation_keeps_id_and_scopes_and_refuses_old_secret_at_once(gw: GatewayProcess) -> None:
    created = key_with(gw, "rotate", "--models", "gpt-4o*", "--rpm", "50")
    rotated = gw.cli_json("keys", "rotate", created["id"])
    assert rotated["id"] == created["id"] and rotated["key"] != created["key"]
    assert rotated["scopes"] == created["scopes"] == {"models": ["gpt-4o*"], "rpm": 50}
    with pytest.raises(openai.AuthenticationError):
        client_for(gw, created["key"]).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    new = client_for(gw, rotated["key"])
    assert new.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    with pytest.raises(openai.PermissionDeniedError):
        new.chat.completions.create(model="gpt-4.1", messages=MESSAGES)
    graced = gw.cli_json("keys", "rotate", created["id"], "--grace", "1h")
    assert client_for(gw, rotated["key"]).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert client_for(gw, graced["key"]).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_revocation_is_immediate_and_recorded_in_the_outbox(gw: GatewayProcess) -> None:
    created = key_with(gw, "revoke")
    client = client_for(gw, created["key"])
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    gw.cli_json("keys", "revoke", created["id"])
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.code == "key_revoked"
    assert any(created["id"] in payload for _, payload in outbox(gw, "key.revoked"))


def test_rate_limit_headers_decrease_then_429_with_retry_after(gw: GatewayProcess) -> None:
    client = client_for(gw, key_with(gw, "rpm", "--rpm", "3")["key"])
    seen = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        seen.append(int(raw.headers["x-ratelimit-remaining-requests"]))
        assert 50 <= reset_seconds(raw.headers["x-ratelimit-reset-requests"]) <= 60
    assert seen == [2, 1, 0]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.code == "rate_limit_exceeded"
    assert "key limit of 3 requests per 60s" in info.value.message and "resets in" in info.value.message
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_exactly_rpm_requests_pass_under_concurrency(gw: GatewayProcess) -> None:
    key = key_with(gw, "burst", "--rpm", "7")["key"]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"{gw.url}/v1/chat/completions",
                        json={"model": "gpt-4o-mini", "messages": MESSAGES},
                        headers={"authorization": f"Bearer {key}", "x-forwarded-for": "10.66.0.1"},
                    )
                    for _ in range(25)
                )
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 7 and statuses.count(429) == 18


def test_tokens_per_minute_names_the_limit(gw: GatewayProcess) -> None:
    client = client_for(gw, key_with(gw, "tpm", "--tpm", "100")["key"])
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
    assert raw.headers["x-ratelimit-limit-tokens"] == "100"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=500)
    assert "tokens" in info.value.message


def test_plan_limits_apply_per_endpoint_class(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "tiny-co", "--plan", "tiny")
    client = client_for(gw, gw.cli_json("keys", "create", "--project", "tiny-co")["key"])
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "plan 'tiny' chat" in info.value.message
    assert client.embeddings.create(model="mock-embed", input="other class").data  # the plan sets no embeddings limit
    gw.cli_json("projects", "set-plan", "tiny-co", "default")
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    unknown = gw.cli("projects", "set-plan", "tiny-co", "platinum", check=False)
    assert unknown.returncode == 1 and "unknown_plan" in unknown.stderr


def test_per_ip_safety_net(gw: GatewayProcess) -> None:
    client = client_for(gw, key_with(gw, "ipnet")["key"], "10.99.99.99")
    for _ in range(40):
        client.models.list()
    with pytest.raises(openai.RateLimitError) as info:
        client.models.list()
    assert "per-IP safety net" in info.value.message
    assert client_for(gw, key_with(gw, "ipnet")["key"], "10.99.99.98").models.list()


def _burst(gw: GatewayProcess, key: str, n: int, max_tokens: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        f"{gw.url}/v1/chat/completions",
                        json={"model": "slow-chat", "messages": MESSAGES, "max_tokens": max_tokens},
                        headers={"authorization": f"Bearer {key}", "x-forwarded-for": f"10.55.{i % 200}.1"},
                    )
                    for i in range(n)
                )
            )

    return asyncio.run(run())


def test_concurrent_burst_cannot_overspend_a_project_budget(gw: GatewayProcess) -> None:
    # slow-chat: input free, output 1.0 per 1M tokens -> worst case of max_tokens=1000 is 1,000 micro
    key = key_with(gw, "budgeted")["key"]
    gw.cli_json("budgets", "set", "--project", "budgeted", "--monthly", "0.01")  # exactly 10 reservations
    responses = _burst(gw, key, 100, 1000)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10
    assert statuses.count(402) == 90
    refused = next(r for r in responses if r.status_code == 402).json()["error"]
    assert refused["code"] == "budget_exceeded" and refused["type"] == "insufficient_quota"
    assert "resets at" in refused["message"]
    balance = gw.cli_json("wallet", "balance", "--project", "budgeted")
    assert 0 < balance["month_spend_micro"] <= 10_000
    assert balance["reserved_micro"] == 0
    usage = gw.cli_json("usage", "--since", "1h", "--project", "budgeted")
    assert sum(r["cost_micro"] for r in usage["data"]) == balance["month_spend_micro"]


def test_concurrent_burst_cannot_overdraw_a_prepaid_wallet(gw: GatewayProcess) -> None:
    key = key_with(gw, "prepaid")["key"]
    gw.cli_json("projects", "set-billing", "prepaid", "prepaid")
    with pytest.raises(openai.APIStatusError) as info:
        client_for(gw, key).chat.completions.create(model="slow-chat", messages=MESSAGES, max_tokens=1000)
    assert info.value.status_code == 402 and info.value.code == "insufficient_credits"
    gw.cli_json("wallet", "credit", "--project", "prepaid", "--amount", "0.01", "--reason", "test float")
    statuses = [r.status_code for r in _burst(gw, key, 100, 1000)]
    assert statuses.count(200) == 10 and statuses.count(402) == 90
    balance = gw.cli_json("wallet", "balance", "--project", "prepaid")
    assert 0 <= balance["balance_micro"] < 10_000
    assert balance["reserved_micro"] == 0
    assert gw.cli_json("ledger", "verify")["ok"] is True


def test_key_budget_and_threshold_events_once_per_month(gw: GatewayProcess) -> None:
    created = key_with(gw, "thresholds")
    gw.cli_json("budgets", "set", "--key", created["id"], "--monthly", "0.0005")  # 500 micro
    client = client_for(gw, created["key"])
    spent = 0
    while True:
        try:
            done = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        except openai.APIStatusError as exc:
            assert exc.status_code == 402 and exc.code == "budget_exceeded"
            assert "key budget" in exc.message
            break
        spent += round((done.usage.model_extra or {})["cost"] * 1_000_000)  # type: ignore[union-attr]
        assert spent <= 500
    percents = sorted(
        int(event_id.rsplit("_", 1)[1])
        for event_id, _ in outbox(gw, "usage.threshold_reached")
        if created["id"] in event_id
    )
    assert percents == [50, 80] or percents == [50, 80, 100]
    assert len(percents) == len(set(percents))
