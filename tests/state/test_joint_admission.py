"""The rate limits and the reservation in one Lua script, against a real redis-server: exact under concurrency
from several OS processes, the same answers as the memory path, and a metered call's round trips counted on
the wire (three: the per-IP net, limits + reservation, settlement with its token correction)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from server.budget import Budgets, Hold
from server.errors import GatewayError
from server.limits import Admission, Check, RateLimiter
from server.state.budgets import SharedBudgets, Totals
from server.state.connection import Connection
from server.state.limits import SharedRateLimiter
from tests.support.services import Redis

MICRO = 1_000


@pytest.fixture()
def redis_url(redis_server: Redis) -> str:
    redis_server.flush()
    return redis_server.url


async def _no_load() -> Totals:
    return {}, {}, {}


def _shared(url: str, balance: int = 0) -> tuple[SharedRateLimiter, SharedBudgets]:
    connection = Connection(url, 2000)
    budgets = SharedBudgets(connection, "UTC", 30.0, _no_load)
    asyncio.run(budgets.start(({}, {}, {"prj_j": balance}), []))
    return SharedRateLimiter(connection), budgets


def _call(
    limiter: RateLimiter | SharedRateLimiter, budgets: Budgets | SharedBudgets, rpm: int, budget: int | None, i: int
) -> tuple[Admission, Hold]:
    """One call's limits (key RPM + TPM) and reservation of MICRO, the way the request path asks for them."""
    checks = [
        Check(limiter.window(("key-rpm", "key_j"), rpm, 60), 1, "key", "requests"),
        Check(limiter.window(("key-tpm", "key_j"), 10**9, 60), 500, "key", "tokens"),
    ]
    terms: dict[str, Any] = {
        "project_budget": budget,
        "key_budget": None,
        "prepaid": budget is None,
        "now_ms": int(time.time() * 1000),
        "hold_id": f"h{i}-{time.monotonic_ns()}",
    }
    if isinstance(budgets, SharedBudgets):
        return budgets.limit_and_reserve(limiter, checks, "prj_j", "key_j", MICRO, **terms)  # type: ignore[arg-type]
    admission = limiter.admit(checks, time.monotonic())
    try:
        return admission, budgets.reserve("prj_j", "key_j", MICRO, **terms)
    except GatewayError as exc:  # as server/pipeline.py does in memory
        admission.settle_tokens(0)
        exc.headers = {**admission.headers, **exc.headers}
        raise


def _many(url: str, attempts: int, rpm: int, budget: int) -> list[int]:
    """One OS process: `attempts` calls from 8 threads; their statuses."""
    limiter, budgets = _shared_no_load(url)

    def one(i: int) -> int:
        try:
            _call(limiter, budgets, rpm, budget, i)
            return 200
        except GatewayError as exc:
            return exc.status

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(attempts)))


def _shared_no_load(url: str) -> tuple[SharedRateLimiter, SharedBudgets]:
    connection = Connection(url, 2000)
    return SharedRateLimiter(connection), SharedBudgets(connection, "UTC", 30.0, _no_load)


@pytest.mark.parametrize(("rpm", "fits", "ok", "limited"), [(1000, 10, 10, 0), (7, 10, 7, 113)])
def test_limits_and_reservation_in_one_script_are_exact_across_processes(
    redis_url: str, rpm: int, fits: int, ok: int, limited: int
) -> None:
    """120 calls at once from 4 processes x 8 threads: exactly min(RPM, K) pass, whichever binds; the rest are
    402 (the budget) or 429 (the limit, which is checked first)."""
    _shared(redis_url)  # the month's totals loaded (spend 0)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        statuses = [s for part in pool.starmap(_many, [(redis_url, 30, rpm, fits * MICRO)] * 4) for s in part]
    assert statuses.count(200) == ok and statuses.count(429) == limited
    assert statuses.count(402) == 120 - ok - limited
    _, budgets = _shared_no_load(redis_url)
    assert budgets.reserved_project.get("prj_j") == ok * MICRO


def test_the_joint_script_answers_as_the_memory_path_does(redis_url: str) -> None:
    """Same sequence on both: a wallet that fits 3 calls, an RPM of 5. A call the wallet refuses still uses its
    request slot (not its tokens), as in memory; then the RPM refuses; the headers agree."""
    memory = RateLimiter(), Budgets(zone="UTC", month="", balances={"prj_j": 3 * MICRO})
    shared = _shared(redis_url, 3 * MICRO)

    def run(limiter: Any, budgets: Any) -> list[tuple[int, str, str]]:
        seen = []
        for i in range(7):
            try:
                admission, _ = _call(limiter, budgets, 5, None, i)
                headers, status = admission.headers, 200
            except GatewayError as exc:
                headers, status = exc.headers, exc.status
            assert headers["x-ratelimit-limit-tokens"] == "1000000000"
            seen.append((status, headers["x-ratelimit-remaining-requests"]))
        return seen

    expected = [(200, "4"), (200, "3"), (200, "2"), (402, "1"), (402, "0"), (429, "0"), (429, "0")]
    assert run(*memory) == expected
    assert run(*shared) == expected


class _Wire:
    """Counts round trips from this process to Redis: one per packed send (a pipeline is one), whichever
    connection of redis-py sends it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import redis.connection

        self.sends = 0
        original: Callable[..., Any] = redis.connection.AbstractConnection.send_packed_command

        def counted(conn: Any, *args: Any, **kwargs: Any) -> Any:
            self.sends += 1
            return original(conn, *args, **kwargs)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)


@pytest.fixture()
def wired(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SharedRateLimiter, SharedBudgets, _Wire]]:
    limiter, budgets = _shared(redis_url, 100 * MICRO)
    yield limiter, budgets, _Wire(monkeypatch)
    budgets.connection.close()


def test_a_metered_call_costs_three_round_trips(wired: tuple[SharedRateLimiter, SharedBudgets, _Wire]) -> None:
    """The per-IP net, limits + reservation, settlement (the token correction rides with it, and lands)."""
    limiter, budgets, wire = wired

    async def one_call() -> None:
        ip = limiter.pace(("ip", "10.1.1.1"), 5000, 600)
        limiter.admit([Check(ip, 1, "per-IP safety net", "requests")], 0.0)
        admission, hold = _call(limiter, budgets, 100, None, 0)
        admission.settle_tokens(120)  # what Settlement.close does first, then the hold
        budgets.settle(hold, 700, project_budget=None, key_budget=None, now_ms=int(time.time() * 1000))

    for _ in range(2):  # the first call loads the scripts (SCRIPT LOAD): count the second
        before = wire.sends
        asyncio.run(one_call())
    assert wire.sends - before == 3
    tokens = budgets.connection.client.get("gw:rl:key-tpm:key_j:t")
    assert tokens == b"240"  # two calls, each corrected from 500 to 120 in the settlement's round trip
