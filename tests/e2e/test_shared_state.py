"""A real gateway process with its hot state on a real redis-server ([state] url; the store stays SQLite):
the limits and budgets tests of test_keys_limits_budgets.py run again on the Redis path, and Redis stopped
under load gives 503s, never an unmetered answer, and service resumes when it returns."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_keys_limits_budgets import (  # the same behaviours, now on Redis
    CONFIG,
    MESSAGES,
    slow,
    test_concurrent_burst_cannot_overdraw_a_prepaid_wallet,
    test_concurrent_burst_cannot_overspend_a_project_budget,
    test_exactly_rpm_requests_pass_under_concurrency,
    test_key_budget_and_threshold_events_once_per_month,
    test_per_ip_safety_net,
    test_plan_limits_apply_per_endpoint_class,
    test_rate_limit_headers_decrease_then_429_with_retry_after,
    test_tokens_per_minute_names_the_limit,
)
from tests.support.gateway import MOCK_CONFIG, GatewayProcess
from tests.support.services import Redis, start_redis
from tests.upstreams.openai_upstream import UpstreamProcess

TRUSTED = 'trusted_proxies = ["127.0.0.0/8"]'
__all__ = [
    "slow",
    "test_concurrent_burst_cannot_overdraw_a_prepaid_wallet",
    "test_concurrent_burst_cannot_overspend_a_project_budget",
    "test_exactly_rpm_requests_pass_under_concurrency",
    "test_key_budget_and_threshold_events_once_per_month",
    "test_per_ip_safety_net",
    "test_plan_limits_apply_per_endpoint_class",
    "test_rate_limit_headers_decrease_then_429_with_retry_after",
    "test_tokens_per_minute_names_the_limit",
]


def state_config(url: str, ttl_s: float = 30.0) -> str:
    return f'\n[state]\nurl = "{url}"\nhold_ttl_s = {ttl_s}\ntimeout_ms = 200\n'


@pytest.fixture(scope="module")
def gw(
    slow: UpstreamProcess, redis_server: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    redis_server.flush()
    directory: Path = tmp_path_factory.mktemp("shared-limits")
    config = CONFIG.format(slow=slow.base_url) + state_config(redis_server.url)
    process = GatewayProcess(directory, config, {"SLOW_KEY": "sk-slow"}, TRUSTED).start()
    yield process
    process.stop()


def test_redis_keeps_the_limits_not_the_process(gw: GatewayProcess, redis_server: Redis) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.keys("gw:rl:*") and client.keys("gw:b:*")
    finally:
        client.close()


def _usage_rows(database: Path, request_ids: list[str]) -> int:
    conn = sqlite3.connect(database)
    try:
        marks = ",".join("?" * len(request_ids))
        return int(conn.execute(f"SELECT COUNT(*) FROM usage WHERE request_id IN ({marks})", request_ids).fetchone()[0])
    finally:
        conn.close()


def test_redis_stopped_mid_load_gives_503s_never_an_unmetered_answer_and_recovers(tmp_path: Path) -> None:
    own = start_redis()  # its own server: this test stops it
    gw = GatewayProcess(tmp_path, MOCK_CONFIG + state_config(own.url)).start()
    try:
        key = gw.new_key("outage")
        results: list[tuple[float, int, str, str]] = []  # (sent at, status, request id, error code)
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    r = http.post(
                        f"{gw.url}/v1/chat/completions",
                        json={"model": "mock-chat", "messages": MESSAGES, "max_tokens": 5},
                        headers={"authorization": f"Bearer {key}"},
                    )
                    code = r.json()["error"]["code"] if r.status_code != 200 else ""
                    if r.status_code == 503:
                        assert "retry-after" in r.headers
                    results.append((sent, r.status_code, r.headers["x-request-id"], code))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.8)
        own.stop()
        down_from = time.monotonic()
        time.sleep(0.3)
        ready = httpx.get(f"{gw.url}/readyz")
        assert ready.status_code == 503 and ready.json()["state"] is False  # a balancer sends no more
        time.sleep(1.2)
        down_until = time.monotonic()
        own.start()  # same port, empty: the gateway loads its totals again from the store
        recovered = None
        deadline = time.monotonic() + 10
        while recovered is None and time.monotonic() < deadline:
            time.sleep(0.1)
            recovered = next((sent for sent, status, _, _ in results if status == 200 and sent > down_until), None)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(15)
        assert recovered is not None, "no success after redis came back"
        assert recovered - down_until < 5.0
        statuses = {status for _, status, _, _ in results}
        assert statuses <= {200, 503}, statuses
        assert {code for _, status, _, code in results if status == 503} == {"metering_unavailable"}
        during = [status for sent, status, _, _ in results if down_from + 0.05 < sent < down_until]
        assert httpx.get(f"{gw.url}/readyz").json()["state"] is True  # back: ready again
        assert during and set(during) == {503}  # never admitted unmetered or unlimited while it was down
        ok = [request_id for _, status, request_id, _ in results if status == 200]
        assert len(ok) > 10
        deadline = time.monotonic() + 5
        while _usage_rows(gw.database, ok) < len(ok) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _usage_rows(gw.database, ok) == len(ok)  # every 200 is metered
        balance = gw.cli_json("wallet", "balance", "--project", "outage")
        usage = gw.cli_json("usage", "--since", "1h", "--project", "outage")
        assert balance["month_spend_micro"] == sum(r["cost_micro"] for r in usage["data"])
        assert balance["reserved_micro"] == 0
    finally:
        gw.stop()
        own.stop()


def test_a_killed_gateway_frees_its_holds_and_its_restart_reconciles_the_totals(
    slow: UpstreamProcess, redis_server: Redis, tmp_path: Path
) -> None:
    from server.state.budgets import SharedBudgets
    from server.state.connection import Connection

    redis_server.flush()
    config = CONFIG.format(slow=slow.base_url) + state_config(redis_server.url, ttl_s=3)
    gw = GatewayProcess(tmp_path, config, {"SLOW_KEY": "sk-slow"}, TRUSTED).start()
    try:
        key = gw.new_key("killed")
        project = next(p["id"] for p in gw.cli_json("projects", "list") if p["name"] == "killed")
        gw.cli_json("projects", "set-billing", "killed", "prepaid")
        gw.cli_json("wallet", "credit", "--project", "killed", "--amount", "1", "--reason", "test float")

        def call() -> None:
            try:
                httpx.post(
                    f"{gw.url}/v1/chat/completions",
                    json={"model": "slow-chat", "messages": MESSAGES, "max_tokens": 1000},
                    headers={"authorization": f"Bearer {key}", "x-forwarded-for": "10.44.0.1"},
                    timeout=10,
                )
            except httpx.TransportError:
                pass  # the gateway died under it

        async def no_totals() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
            return {}, {}, {}

        shared = SharedBudgets(Connection(redis_server.url, 2000), "UTC", 3.0, no_totals)
        callers = [threading.Thread(target=call) for _ in range(8)]
        for thread in callers:
            thread.start()
        deadline = time.monotonic() + 5
        while shared.reserved_wallet.get(project) < 8 * 1000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert shared.reserved_wallet.get(project) == 8 * 1000  # eight worst cases held in Redis
        gw.kill9()
        killed = time.monotonic()
        for thread in callers:
            thread.join(15)
        while shared.reserved_wallet.get(project) and time.monotonic() - killed < 6:
            time.sleep(0.1)
        assert shared.reserved_wallet.get(project) == 0  # nobody renews them: they expired
        assert time.monotonic() - killed < 4.5
        gw.start()  # its crash recovery bills nothing (non-stream calls never answered) and Redis agrees
        balance = gw.cli_json("wallet", "balance", "--project", "killed")  # read from Redis
        assert balance["reserved_micro"] == 0
        assert gw.cli_json("ledger", "verify")["ok"] is True
        conn = sqlite3.connect(gw.database)
        try:
            stored = conn.execute("SELECT balance_micro FROM projects WHERE id = ?", (project,)).fetchone()[0]
            ledger = conn.execute("SELECT SUM(amount_micro) FROM ledger WHERE project_id = ?", (project,)).fetchone()[0]
            spent = conn.execute("SELECT SUM(cost_micro) FROM usage WHERE project_id = ?", (project,)).fetchone()[0]
        finally:
            conn.close()
        assert balance["balance_micro"] == stored == ledger == 1_000_000 - (spent or 0)
    finally:
        gw.stop()
