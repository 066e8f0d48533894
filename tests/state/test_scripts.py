"""The shared hot state's Lua scripts against a real redis-server, under concurrency from threads and from
several OS processes: exact rate limits, budgets never exceeded, holds that expire when their owner stops
renewing them, idempotency claims that only their holder drops."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.budget import Hold
from server.errors import GatewayError
from server.limits import Check
from server.state.budgets import SharedBudgets, Totals
from server.state.claims import SharedInFlight
from server.state.connection import Connection
from server.state.limits import SharedRateLimiter
from tests.support.services import Redis

MICRO = 1_000


@pytest.fixture()
def redis_url(redis_server: Redis) -> str:
    redis_server.flush()
    return redis_server.url


def _now() -> int:
    return int(time.time() * 1000)


async def _no_load() -> Totals:
    return {}, {}, {}


def _budgets(url: str, ttl_s: float = 30.0) -> SharedBudgets:
    return SharedBudgets(Connection(url, 2000), "UTC", ttl_s, _no_load)


def _load(url: str, spent: dict[str, int], balances: dict[str, int]) -> None:
    asyncio.run(_budgets(url).start((spent, {}, balances), []))


def _admit_many(url: str, attempts: int, limit: int) -> int:
    """One OS process: `attempts` admissions from 8 threads against one RPM window; how many passed."""
    limiter = SharedRateLimiter(Connection(url, 2000))
    window = limiter.window(("key-rpm", "shared"), limit, 60)

    def one(_: int) -> int:
        try:
            limiter.admit([Check(window, 1, "key", "requests")], 0.0)
            return 1
        except GatewayError as exc:
            assert exc.status == 429
            return 0

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(one, range(attempts)))


def _reserve_many(url: str, attempts: int, prepaid: bool, budget: int | None) -> int:
    """One OS process: `attempts` reservations of MICRO from 8 threads; how many were granted."""
    budgets = _budgets(url)

    def one(i: int) -> int:
        try:
            budgets.reserve(
                "prj_b",
                f"key_{i % 3}",
                MICRO,
                project_budget=budget,
                key_budget=None,
                prepaid=prepaid,
                now_ms=int(time.time() * 1000),
            )
            return 1
        except GatewayError as exc:
            assert exc.code in ("budget_exceeded", "insufficient_credits")
            return 0

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(one, range(attempts)))


def _in_processes(target: object, args: tuple[object, ...], processes: int) -> list[int]:
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return pool.starmap(target, [args] * processes)  # type: ignore[arg-type]


def test_rpm_is_exact_across_processes_and_threads(redis_url: str) -> None:
    passed = _in_processes(_admit_many, (redis_url, 40, 77), 4)  # 160 attempts at once, 77 allowed
    assert sum(passed) == 77


def test_a_refused_check_consumes_nothing_from_the_others(redis_url: str) -> None:
    limiter = SharedRateLimiter(Connection(redis_url, 2000))
    wide, narrow = limiter.window(("a",), 10, 60), limiter.window(("b",), 1, 60)
    limiter.admit([Check(narrow, 1, "narrow", "requests")], 0.0)
    for _ in range(3):
        with pytest.raises(GatewayError) as info:
            limiter.admit([Check(wide, 1, "wide", "requests"), Check(narrow, 1, "narrow", "requests")], 0.0)
        assert "narrow" in info.value.message and int(info.value.headers["retry-after"]) >= 59
    admitted = limiter.admit([Check(wide, 1, "wide", "requests")], 0.0)
    assert admitted.headers["x-ratelimit-remaining-requests"] == "9"  # the refusals took nothing


def test_token_estimate_is_corrected_to_the_actual_usage(redis_url: str) -> None:
    limiter = SharedRateLimiter(Connection(redis_url, 2000))
    tpm = limiter.window(("key-tpm", "k"), 1000, 60)
    first = limiter.admit([Check(tpm, 900, "key", "tokens")], 0.0)
    with pytest.raises(GatewayError):
        limiter.admit([Check(tpm, 200, "key", "tokens")], 0.0)
    first.settle_tokens(100)  # the call used far less than its worst case
    second = limiter.admit([Check(tpm, 200, "key", "tokens")], 0.0)
    assert second.headers["x-ratelimit-remaining-tokens"] == "700"


def test_per_ip_pace_is_shared(redis_url: str) -> None:
    limiters = [SharedRateLimiter(Connection(redis_url, 2000)) for _ in range(2)]
    passed = 0
    for i in range(10):
        limiter = limiters[i % 2]
        try:
            limiter.admit([Check(limiter.pace(("ip", "10.0.0.1"), 4, 600), 1, "per-IP safety net", "requests")], 0.0)
            passed += 1
        except GatewayError as exc:
            assert exc.status == 429
    assert passed == 4


@pytest.mark.parametrize("prepaid", [False, True], ids=["project-budget", "prepaid-wallet"])
def test_exactly_k_of_100_concurrent_reservations_fit(redis_url: str, prepaid: bool) -> None:
    k = 37
    _load(redis_url, {"prj_b": 3 * MICRO}, {"prj_b": k * MICRO})
    budget = None if prepaid else (k + 3) * MICRO  # 3 already spent this month
    granted = _in_processes(_reserve_many, (redis_url, 25, prepaid, budget), 4)
    assert sum(granted) == k
    budgets = _budgets(redis_url)
    held = budgets.reserved_wallet.get("prj_b") if prepaid else budgets.reserved_project.get("prj_b")
    assert held == k * MICRO


def test_settle_and_release_resolve_a_hold_once(redis_url: str) -> None:
    _load(redis_url, {}, {"prj_b": 10 * MICRO})
    budgets = _budgets(redis_url)
    now = int(time.time() * 1000)
    hold = budgets.reserve("prj_b", "key_1", 4 * MICRO, project_budget=None, key_budget=None, prepaid=True, now_ms=now)
    assert budgets.settle(hold, 3 * MICRO, project_budget=None, key_budget=None, now_ms=now) == []
    budgets.release(hold)
    budgets.settle(hold, 3 * MICRO, project_budget=None, key_budget=None, now_ms=now)
    assert budgets.reserved_wallet.get("prj_b") == 0
    assert budgets.balances.get("prj_b") == 7 * MICRO
    assert budgets.spent_project.get("prj_b") == 3 * MICRO
    assert budgets.spent_key.get("key_1") == 3 * MICRO


def test_a_hold_expires_when_its_owner_stops_renewing_it(redis_url: str) -> None:
    _load(redis_url, {}, {"prj_b": 5 * MICRO})
    owner, other = _budgets(redis_url, ttl_s=1.0), _budgets(redis_url, ttl_s=1.0)
    now = int(time.time() * 1000)
    owner.reserve("prj_b", "key_1", 5 * MICRO, project_budget=None, key_budget=None, prepaid=True, now_ms=now)
    for _ in range(4):  # renewed past its ttl: still held
        time.sleep(0.4)
        assert owner.renew() == 0  # renewed, none had to be put back
    with pytest.raises(GatewayError):
        other.reserve("prj_b", "key_2", MICRO, project_budget=None, key_budget=None, prepaid=True, now_ms=now)
    time.sleep(1.2)  # the owner stopped renewing (as a dead process does)
    other.reserve("prj_b", "key_2", 5 * MICRO, project_budget=None, key_budget=None, prepaid=True, now_ms=now)


HOLDER = """
import asyncio, sys, time
from server.state.budgets import SharedBudgets
from server.state.connection import Connection
async def nothing(): return {}, {}, {}
budgets = SharedBudgets(Connection(sys.argv[1], 2000), "UTC", 1.0, nothing)
now = int(time.time() * 1000)
budgets.reserve("prj_b", "key_1", 5000, project_budget=None, key_budget=None, prepaid=True, now_ms=now, hold_id="held")
print("held", flush=True)
while True:
    time.sleep(0.3)
    budgets.renew()
"""


def test_a_killed_process_frees_its_holds_within_their_ttl(redis_url: str) -> None:
    _load(redis_url, {}, {"prj_b": 5 * MICRO})
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, redis_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        budgets = _budgets(redis_url)
        time.sleep(1.5)  # past the ttl: the live holder renews it
        with pytest.raises(GatewayError):
            budgets.reserve(
                "prj_b",
                "key_2",
                MICRO,
                project_budget=None,
                key_budget=None,
                prepaid=True,
                now_ms=int(time.time() * 1000),
            )
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        killed = time.monotonic()
        while True:
            try:
                budgets.reserve(
                    "prj_b",
                    "key_2",
                    5 * MICRO,
                    project_budget=None,
                    key_budget=None,
                    prepaid=True,
                    now_ms=int(time.time() * 1000),
                )
                break
            except GatewayError:
                assert time.monotonic() - killed < 2.0
                time.sleep(0.05)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)


def test_a_hold_redis_lost_is_put_back_by_its_live_owner(redis_server: Redis) -> None:
    redis_server.flush()
    _load(redis_server.url, {}, {"prj_b": 5 * MICRO})
    owner = _budgets(redis_server.url)
    owner.reserve("prj_b", "key_1", 4 * MICRO, project_budget=None, key_budget=None, prepaid=True, now_ms=_now())
    redis_server.flush()  # Redis restarted empty under a running request
    _load(redis_server.url, {}, {"prj_b": 5 * MICRO})  # the totals come back from the store
    assert owner.renew() == 3  # put back in its key, project and wallet sets
    assert owner.reserved_wallet.get("prj_b") == 4 * MICRO and owner.reserved_project.get("prj_b") == 4 * MICRO


def test_restore_counts_a_hold_once(redis_url: str) -> None:
    _load(redis_url, {}, {"prj_b": 5 * MICRO})
    budgets = _budgets(redis_url)
    for _ in range(2):  # a job's hold put back twice (two restarts) is still one hold
        budgets.restore(Hold("prj_b", "key_1", 2 * MICRO, True, "job_1"))
    assert budgets.reserved_wallet.get("prj_b") == 2 * MICRO


def test_a_redis_without_totals_refuses_until_they_are_loaded_again(redis_server: Redis) -> None:
    redis_server.flush()
    loads: list[int] = []

    async def from_store() -> Totals:
        loads.append(1)
        return {"prj_b": 0}, {}, {"prj_b": 9 * MICRO}

    async def scenario() -> None:
        budgets = SharedBudgets(Connection(redis_server.url, 2000), "UTC", 30.0, from_store)
        with pytest.raises(GatewayError) as info:
            budgets.reserve(
                "prj_b", "k", MICRO, project_budget=None, key_budget=None, prepaid=True, now_ms=int(time.time() * 1000)
            )
        assert info.value.status == 503 and info.value.code == "metering_unavailable"
        await asyncio.sleep(0.2)
        budgets.reserve(
            "prj_b", "k", MICRO, project_budget=None, key_budget=None, prepaid=True, now_ms=int(time.time() * 1000)
        )
        assert budgets.balances.get("prj_b") == 9 * MICRO

    asyncio.run(scenario())
    assert loads == [1]


def test_an_idempotency_claim_is_dropped_only_by_its_holder(redis_url: str) -> None:
    first, second = SharedInFlight(Connection(redis_url, 2000), 1.0), SharedInFlight(Connection(redis_url, 2000), 1.0)
    slot = ("prj_x", "retry-me")
    assert first.take(slot)
    assert not second.take(slot)
    second.drop(slot)  # not its claim: nothing happens
    assert not second.take(slot)
    first.drop(slot)
    assert second.take(slot)
    time.sleep(1.1)  # its holder stopped renewing it
    assert first.take(slot)


def test_an_answer_cached_by_one_process_is_served_to_another_until_it_expires(redis_url: str) -> None:
    from server.answer_cache import Entry, digest
    from server.state.cache import SharedAnswerCache

    first, second = (SharedAnswerCache(Connection(redis_url, 2000), 1 << 20) for _ in range(2))
    key = digest("chat", "prj_1", "mock-chat", {"messages": []})
    first.put(key, Entry(b'{"answer": 1}', 12, 3, "mock-chat", False, first.deadline(0.5)))
    found = second.get(key)
    assert (
        found is not None and found.value == b'{"answer": 1}' and (found.input_tokens, found.output_tokens) == (12, 3)
    )
    assert second.get(digest("chat", "prj_2", "mock-chat", {"messages": []})) is None  # another project's key
    time.sleep(0.6)
    assert second.get(key) is None


def test_a_new_month_starts_its_spend_at_zero_without_a_reload(redis_url: str) -> None:
    _load(redis_url, {"prj_b": 9 * MICRO}, {"prj_b": 20 * MICRO})
    budgets = _budgets(redis_url)
    from server.budget import month_key, next_month_start

    next_month = int(next_month_start(month_key(_now(), "UTC"), "UTC").timestamp() * 1000) + 3_600_000
    hold = budgets.reserve(
        "prj_b", "key_1", 9 * MICRO, project_budget=10 * MICRO, key_budget=None, prepaid=True, now_ms=next_month
    )
    assert hold.micro == 9 * MICRO  # last month's 9 spent do not count against this month's 10
