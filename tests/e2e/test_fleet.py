"""Three gateway processes on one PostgreSQL store and one Redis: the single-node guarantees hold across them.

A budget that fits exactly K worst cases admits exactly K of 100 concurrent calls spread over the three; a
key's RPM is exact across them; a key revoked on one is refused by all within a second; a Stripe top-up
delivered to two processes at once credits once; a process killed with SIGKILL under load loses nothing (every
200 has its usage row and its ledger debit), its holds expire and the survivors keep serving. Nothing mocked:
real PostgreSQL and redis-server, the OpenAI stand-in upstream (slow where calls must overlap), the Stripe
stand-in with signed events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.support.gateway import GatewayProcess, start_fleet
from tests.support.services import Postgres, Redis
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process
from tests.upstreams.stripe_upstream import StripeProcess, checkout_completed_event, deliver_event, start_stripe_process

MESSAGES = [{"role": "user", "content": "hello fleet"}]
STRIPE_SECRET = "whsec_fleet_secret"
CONFIG = """
[limits]
ip_requests = 1000000

[plans.default]
rpm = {{ chat = 100000 }}

[[providers]]
name = "slow"
kind = "openai"
base_url = "{upstream}"
api_key_env = "TEST_UPSTREAM_KEY"
timeouts = {{ connect = 2, first_byte = 10, total = 20 }}

[[models]]
name = "slow-chat"
targets = ["slow:slow-chat"]
price = {{ input = 0, output = 1.0 }}

[stripe]
api_base = "{stripe}"

[store]
url = "{store}"
instance_ttl_s = 2

[state]
url = "{state}"
hold_ttl_s = 3
reconcile_s = 0.5
"""


@pytest.fixture(scope="module")
def slow() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def stripe_up() -> Iterator[StripeProcess]:
    up = start_stripe_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def store_url(postgres: Postgres) -> str:
    return postgres.create_database("fleet3")


@pytest.fixture(scope="module")
def fleet(
    store_url: str,
    redis_server: Redis,
    slow: UpstreamProcess,
    stripe_up: StripeProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[GatewayProcess]]:
    redis_server.flush()
    config = CONFIG.format(upstream=slow.base_url, stripe=stripe_up.root_url, store=store_url, state=redis_server.url)
    env = {
        "TEST_UPSTREAM_KEY": UPSTREAM_KEY,
        "STRIPE_SECRET_KEY": "sk_test_gateway",
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    }
    processes = start_fleet([tmp_path_factory.mktemp(f"fleet{index}") for index in range(3)], config, env)
    yield processes
    for gw in processes:
        gw.stop()


def _chat(url: str, key: str, max_tokens: int = 5) -> httpx.Request:
    return httpx.Request(
        "POST",
        f"{url}/v1/chat/completions",
        json={"model": "slow-chat", "messages": MESSAGES, "max_tokens": max_tokens},
        headers={"authorization": f"Bearer {key}"},
    )


def _spread(fleet: list[GatewayProcess], key: str, n: int, max_tokens: int) -> list[httpx.Response]:
    """`n` calls at once, dealt round-robin to the live processes."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as http:
            calls = (http.send(_chat(fleet[i % len(fleet)].url, key, max_tokens)) for i in range(n))
            return await asyncio.gather(*calls)

    return asyncio.run(run())


def _key(gw: GatewayProcess, project: str, *flags: str) -> dict[str, str]:
    gw.cli_json("projects", "create", project)
    return gw.cli_json("keys", "create", "--project", project, *flags)  # type: ignore[no-any-return]


def test_a_budget_holds_across_three_processes(fleet: list[GatewayProcess], slow: UpstreamProcess) -> None:
    key = _key(fleet[0], "fleet-budget")["key"]
    # output 1.0 per 1M tokens: a call with max_tokens=1000 reserves 1,000 micro, so 0.01 fits exactly ten
    fleet[0].cli_json("budgets", "set", "--project", "fleet-budget", "--monthly", "0.01")
    time.sleep(0.3)  # the budget reaches the other processes over pub/sub
    slow.set_behavior(delay_ms=700)  # every call of the burst is in flight at once
    try:
        statuses = [r.status_code for r in _spread(fleet, key, 100, 1000)]
    finally:
        slow.set_behavior(delay_ms=0)
    assert statuses.count(200) == 10 and statuses.count(402) == 90
    for gw in fleet:
        balance = gw.cli_json("wallet", "balance", "--project", "fleet-budget")
        assert 0 < balance["month_spend_micro"] <= 10_000 and balance["reserved_micro"] == 0


def test_rpm_is_exact_across_three_processes(fleet: list[GatewayProcess]) -> None:
    key = _key(fleet[0], "fleet-rpm", "--rpm", "7")["key"]
    time.sleep(0.2)
    statuses = [r.status_code for r in _spread(fleet, key, 30, 5)]
    assert statuses.count(200) == 7 and statuses.count(429) == 23


def test_a_key_revoked_on_one_process_is_refused_by_all_within_a_second(fleet: list[GatewayProcess]) -> None:
    created = _key(fleet[0], "fleet-revoke")
    time.sleep(0.2)
    with httpx.Client(timeout=10) as http:
        for gw in fleet:
            assert http.send(_chat(gw.url, created["key"])).status_code == 200
        fleet[1].cli_json("keys", "revoke", created["id"])
        revoked = time.monotonic()
        for gw in fleet:
            while http.send(_chat(gw.url, created["key"])).status_code != 403:
                assert time.monotonic() - revoked < 1.0, f"{gw.url} still accepts a revoked key"
                time.sleep(0.02)


def test_a_topup_delivered_to_two_processes_at_once_credits_once(
    fleet: list[GatewayProcess], stripe_up: StripeProcess, store_url: str
) -> None:
    fleet[0].cli_json("projects", "create", "fleet-topup")
    order = fleet[0].cli_json("wallet", "topup", "--project", "fleet-topup", "--amount", "25")
    session = stripe_up.complete_session(order["session_id"])
    events = [checkout_completed_event(session, event_id=f"evt_fleet_{i}") for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # two events (Stripe's redelivery) to each of two
        statuses = list(
            pool.map(
                lambda pair: deliver_event(f"{pair[0].url}/stripe/webhook", pair[1], STRIPE_SECRET).status_code,
                zip([fleet[0], fleet[1], fleet[0], fleet[1]], events, strict=True),
            )
        )
    assert statuses == [200, 200, 200, 200]
    for gw in fleet:
        assert gw.cli_json("wallet", "balance", "--project", "fleet-topup")["balance_micro"] == 25_000_000
    with psycopg.connect(store_url) as conn:
        topups = conn.execute(
            "SELECT COUNT(*) FROM ledger l JOIN projects p ON p.id = l.project_id"
            " WHERE p.name = 'fleet-topup' AND l.kind = 'topup'"
        ).fetchone()
        recharged = conn.execute("SELECT COUNT(*) FROM outbox WHERE event_type = 'wallet.recharged'").fetchone()
    assert topups == (1,) and recharged == (1,)
    assert fleet[2].cli_json("ledger", "verify")["ok"] is True


def _project_id(gw: GatewayProcess, name: str) -> str:
    return next(p["id"] for p in gw.cli_json("projects", "list") if p["name"] == name)


def _month_spend(store_url: str, project_id: str) -> int:
    """This month's committed spend of a project, in the store (UTC months: the default billing zone)."""
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(store_url) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(cost_micro), 0) FROM usage WHERE project_id = %s AND created_ms >= %s",
            (project_id, int(month.timestamp() * 1000)),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _burst_is_exact(fleet: list[GatewayProcess], slow: UpstreamProcess, key: str, budget: int, spent: int) -> None:
    """30 overlapping calls over the fleet, each reserving 1,000 micro: exactly as many pass as the rest fits."""
    slow.set_behavior(delay_ms=700)
    try:
        statuses = [r.status_code for r in _spread(fleet, key, 30, 1000)]
    finally:
        slow.set_behavior(delay_ms=0)
    fits = (budget - spent) // 1000
    assert statuses.count(200) == fits and statuses.count(402) == 30 - fits, statuses


def test_drift_injected_into_redis_is_reconciled_and_the_budget_is_exact_again(
    fleet: list[GatewayProcess], slow: UpstreamProcess, redis_server: Redis, store_url: str
) -> None:
    """Redis's running spend is wrong (written straight to Redis: the way drift looks, whatever caused it); one
    process of the fleet reconciles it with PostgreSQL within the period, and the budget admits exactly what
    the store says is left."""
    import redis

    key = _key(fleet[0], "fleet-drift")["key"]
    project_id = _project_id(fleet[0], "fleet-drift")
    fleet[0].cli_json("budgets", "set", "--project", "fleet-drift", "--monthly", "0.01")
    time.sleep(0.3)
    with httpx.Client(timeout=10) as http:
        assert all(http.send(_chat(gw.url, key)).status_code == 200 for gw in fleet)
    spent = _month_spend(store_url, project_id)
    assert 0 < spent < 1000  # so the budget's 10,000 fits nine more worst cases, not ten
    client = redis.Redis.from_url(redis_server.url)
    total = f"gw:b:spent:{time.strftime('%Y-%m', time.gmtime())}:p:{project_id}"
    try:
        deadline = time.monotonic() + 3
        while client.hlen("gw:b:unsettled") and time.monotonic() < deadline:  # the calls' closings are in
            time.sleep(0.1)
        client.set(total, 0)  # under the truth: left alone, the fleet would admit ten
        drifted = time.monotonic()
        while int(client.get(total) or 0) != spent:
            assert time.monotonic() - drifted < 2.0, "the drift was not reconciled within a few periods"
            time.sleep(0.05)
    finally:
        client.close()
    _burst_is_exact(fleet, slow, key, 10_000, spent)


def _metered(store_url: str, request_ids: list[str]) -> int:
    """How many of these requests have both their usage row and their ledger debit in PostgreSQL."""
    with psycopg.connect(store_url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM requests r JOIN usage u ON u.request_id = r.id"
            " JOIN ledger l ON l.kind = 'usage' AND l.source_id = r.id WHERE r.id = ANY(%s)",
            (request_ids,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_redis_stopped_under_load_on_three_processes_fails_closed_and_all_recover(
    fleet: list[GatewayProcess], slow: UpstreamProcess, redis_server: Redis, store_url: str
) -> None:
    """Load over the three processes while the fleet's Redis is stopped, then started again empty: every answer
    is a metered 200 or a 503 metering_unavailable, each call sent while it is down is refused, /readyz is 503
    on all three, all three serve again within seconds, and a budget is exact afterwards. Redis is left up."""
    key = _key(fleet[0], "fleet-outage")["key"]
    time.sleep(0.2)
    results: list[tuple[float, int, int, str, str]] = []  # (sent at, process, status, request id, error code)
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(timeout=10) as http:
            i = worker
            while not stop.is_set():
                index = i % len(fleet)
                i += 1
                sent = time.monotonic()
                r = http.send(_chat(fleet[index].url, key))
                code = "" if r.status_code == 200 else r.json()["error"]["code"]
                if r.status_code != 200 and "retry-after" not in r.headers:
                    code += " (no retry-after)"
                results.append((sent, index, r.status_code, r.headers["x-request-id"], code))
                time.sleep(0.01)

    threads = [threading.Thread(target=load, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.6)
        redis_server.stop()
        down_from = time.monotonic()
        time.sleep(0.4)
        for gw in fleet:  # a balancer sends them no more
            ready = httpx.get(f"{gw.url}/readyz", timeout=5)
            assert ready.status_code == 503 and ready.json()["state"] is False
        time.sleep(0.8)
        down_until = time.monotonic()
        redis_server.start()  # the same port, empty: the fleet loads its totals again from PostgreSQL
        deadline = time.monotonic() + 5
        while {i for sent, i, status, _, _ in list(results) if status == 200 and sent > down_until} != {0, 1, 2}:
            assert time.monotonic() < deadline, "not every process served again within 5 s of redis returning"
            time.sleep(0.05)
        recovered = time.monotonic() - down_until
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        if redis_server.proc is None:
            redis_server.start()
    assert recovered < 5.0
    assert {status for _, _, status, _, _ in results} <= {200, 503}
    assert {code for _, _, status, _, code in results if status == 503} == {"metering_unavailable"}
    during = {status for sent, _, status, _, _ in results if down_from + 0.05 < sent < down_until}
    assert during == {503}  # nothing admitted unmetered or unlimited while Redis was down
    ok = [request_id for _, _, status, request_id, _ in results if status == 200]
    assert len(ok) > 20
    deadline = time.monotonic() + 5
    while _metered(store_url, ok) < len(ok) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _metered(store_url, ok) == len(ok)  # every 200 has its usage row and its ledger debit
    for gw in fleet:
        assert httpx.get(f"{gw.url}/readyz", timeout=5).json()["state"] is True
    exact = _key(fleet[1], "fleet-after-outage")["key"]
    fleet[1].cli_json("budgets", "set", "--project", "fleet-after-outage", "--monthly", "0.005")
    time.sleep(0.5)  # the key and the budget reach the others over the reconnected pub/sub
    _burst_is_exact(fleet, slow, exact, 5_000, 0)


def test_a_process_killed_under_load_loses_nothing_and_its_holds_expire(
    fleet: list[GatewayProcess], slow: UpstreamProcess, store_url: str
) -> None:
    """Runs last: it kills the third process. Every 200 any process gave has its usage row and its debit; the
    killed process's requests are closed by a survivor; its reservations are gone from Redis within the hold
    TTL, so the project's budget is whole again; the survivors serve on."""
    key = _key(fleet[0], "fleet-kill")["key"]
    time.sleep(0.2)
    victim = fleet[2]
    slow.set_behavior(delay_ms=150)
    try:

        async def load() -> list[httpx.Response | None]:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as http:

                async def one(i: int) -> httpx.Response | None:
                    await asyncio.sleep(i * 0.01)
                    try:
                        return await http.send(_chat(fleet[i % 3].url, key, 50))
                    except httpx.HTTPError:
                        return None  # the killed process's connections

                async def kill_midway() -> None:
                    await asyncio.sleep(0.6)
                    victim.kill9()

                results, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(120))), kill_midway())
                return list(results)

        answers = asyncio.run(load())
    finally:
        slow.set_behavior(delay_ms=0)
    ok_ids = [r.headers["x-request-id"] for r in answers if r is not None and r.status_code == 200]
    assert len(ok_ids) >= 60 and any(r is None for r in answers)
    deadline = time.monotonic() + 15
    while True:  # a survivor's lease round closes the dead process's pending requests
        with psycopg.connect(store_url) as conn:
            pending = conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()
            open_holds = conn.execute("SELECT COUNT(*) FROM holds WHERE status = 'open'").fetchone()
        if (pending, open_holds) == ((0,), (0,)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert pending == (0,) and open_holds == (0,)
    with psycopg.connect(store_url) as conn:
        metered = conn.execute(
            "SELECT COUNT(*) FROM requests r JOIN usage u ON u.request_id = r.id"
            " JOIN ledger l ON l.kind = 'usage' AND l.source_id = r.id WHERE r.id = ANY(%s)",
            (ok_ids,),
        ).fetchone()
    assert metered == (len(ok_ids),)
    survivors = fleet[:2]
    deadline = time.monotonic() + 10  # the dead process stops renewing: its holds leave Redis within hold_ttl_s
    while fleet[0].cli_json("wallet", "balance", "--project", "fleet-kill")["reserved_micro"] != 0:
        assert time.monotonic() < deadline, "the killed process's reservations never expired"
        time.sleep(0.3)
    with httpx.Client(timeout=10) as http:
        assert all(http.send(_chat(gw.url, key)).status_code == 200 for gw in survivors)
    assert survivors[1].cli_json("ledger", "verify")["ok"] is True
