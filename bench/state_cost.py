#!/usr/bin/env python3
"""What the hot state costs per request, in memory and on Redis: the rate-limit check (key RPM + TPM + plan
RPM in one admission, as a chat call makes), the per-IP net, check-and-reserve of a budget hold, and its
settlement. The Redis figures are wall time per call against a local redis-server (one round trip each,
the same scripts the gateway runs), next to the asyncio client running the same script, which is what the
request path would pay had it used redis.asyncio. Prints figures and the machine; asserts nothing.

    .venv/bin/python bench/state_cost.py [--calls 5000] [--redis redis://127.0.0.1:6379/0]

Without --redis it starts a redis-server of its own (Debian's package) on a free port and stops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.budget import Budgets
from server.limits import Check, RateLimiter
from server.state.budgets import SharedBudgets, Totals
from server.state.connection import Connection
from server.state.limits import ADMIT, SharedRateLimiter

BIG = 10**15


def per_call_us(fn: Callable[[int], object], calls: int) -> float:
    for i in range(min(200, calls)):
        fn(i)
    started = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - started) / calls * 1e6


def limiter_checks(limiter: RateLimiter | SharedRateLimiter) -> Callable[[int], object]:
    rpm = limiter.window(("key-rpm", "k"), BIG, 60)
    tpm = limiter.window(("key-tpm", "k"), BIG, 60)
    plan = limiter.window(("plan-rpm", "p", "chat"), BIG, 60)

    def check(_: int) -> object:
        admission = limiter.admit(
            [Check(rpm, 1, "key", "requests"), Check(tpm, 500, "key", "tokens"), Check(plan, 1, "plan", "requests")],
            time.monotonic(),
        )
        admission.settle_tokens(300)  # on Redis: queued, sent with others (below, every 50 calls, as in 20 ms)
        if isinstance(limiter, SharedRateLimiter) and len(limiter._corrections) >= 50:
            limiter.flush()
            limiter._flush = _Queued()  # type: ignore[assignment]
        return admission

    return check


class _Queued:
    """What `correct` does on the server's loop: queue, and leave the sending to a timer."""

    def call_later(self, *_: object) -> None:
        return None


def ip_check(limiter: RateLimiter | SharedRateLimiter) -> Callable[[int], object]:
    def check(i: int) -> object:
        pace = limiter.pace(("ip", f"10.0.{i % 250}.1"), BIG, 600)
        return limiter.admit([Check(pace, 1, "per-IP safety net", "requests")], time.monotonic())

    return check


def reserve_settle(budgets: Budgets | SharedBudgets) -> tuple[Callable[[int], object], Callable[[int], object]]:
    holds: list[object] = []
    now = int(time.time() * 1000)

    def reserve(i: int) -> object:
        hold = budgets.reserve(
            "prj_bench",
            "key_bench",
            1000,
            project_budget=BIG,
            key_budget=BIG,
            prepaid=True,
            now_ms=now,
            hold_id=f"h{i}-{len(holds)}",
        )
        holds.append(hold)
        return hold

    def settle(_: int) -> object:
        return budgets.settle(holds.pop(), 700, project_budget=BIG, key_budget=BIG, now_ms=now)  # type: ignore[arg-type]

    return reserve, settle


async def asyncio_admit_us(url: str, calls: int) -> float:
    """The same admission script through redis.asyncio (EVALSHA), one call after another on one loop."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    sha = await client.script_load(ADMIT.source)
    keys = ["gw:rl:bench-async", "gw:rl:bench-async:t"]
    for i in range(200):
        await client.evalsha(sha, 2, *keys, f"w{i}", "w", BIG, 60_000, 1)
    started = time.perf_counter()
    for i in range(calls):
        await client.evalsha(sha, 2, *keys, f"a{i}", "w", BIG, 60_000, 1)
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed / calls * 1e6


def cpu_us(fn: Callable[[int], object], calls: int) -> float:
    started = time.process_time()
    for i in range(calls):
        fn(i)
    return (time.process_time() - started) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--redis", default="")
    args = parser.parse_args()
    own = None
    url = args.redis
    if not url:
        from tests.support.services import start_redis

        own = start_redis()
        url = own.url
    try:
        machine = f"{platform.machine()} {platform.processor() or ''}".strip()
        print(f"machine: {machine}, {os.cpu_count()} cpus, Python {platform.python_version()}")
        print(f"redis: {url} ({'started for this run' if own else 'given'}); {args.calls} calls each\n")

        async def no_totals() -> Totals:
            return {}, {}, {}

        connection = Connection(url, 2000)
        shared_budgets = SharedBudgets(connection, "UTC", 30.0, no_totals)
        asyncio.run(shared_budgets.start(({}, {}, {"prj_bench": BIG}), []))
        memory_budgets = Budgets(zone="UTC", month=shared_budgets.month, balances={"prj_bench": BIG})
        rows = []
        shared_limiter = SharedRateLimiter(connection)
        shared_limiter._flush = _Queued()  # type: ignore[assignment]  # no timer: the check flushes every 50
        for name, memory, shared in (
            (
                "rate limits (3 windows), token fix",
                limiter_checks(RateLimiter()),
                limiter_checks(SharedRateLimiter(connection)),
            ),
            ("per-IP net (GCRA)", ip_check(RateLimiter()), ip_check(SharedRateLimiter(connection))),
        ):
            rows.append(
                (name, per_call_us(memory, args.calls), per_call_us(shared, args.calls), cpu_us(shared, args.calls))
            )
        m_reserve, m_settle = reserve_settle(memory_budgets)
        s_reserve, s_settle = reserve_settle(shared_budgets)
        rows.append(("check-and-reserve", per_call_us(m_reserve, args.calls), per_call_us(s_reserve, args.calls), 0.0))
        rows.append(("settle", per_call_us(m_settle, args.calls), per_call_us(s_settle, args.calls), 0.0))
        cpu_reserve = cpu_us(s_reserve, args.calls)
        rows[-2] = (*rows[-2][:3], cpu_reserve)
        print(f"{'per request step':38} {'memory µs':>10} {'redis µs':>10} {'redis CPU µs':>13}")
        for name, memory_us, redis_us, redis_cpu in rows:
            print(f"{name:38} {memory_us:10.1f} {redis_us:10.1f} {redis_cpu:13.1f}")
        total_memory = sum(r[1] for r in rows)
        total_redis = sum(r[2] for r in rows)
        print(f"{'a metered call (all four)':38} {total_memory:10.1f} {total_redis:10.1f}")
        sync_admit = per_call_us(
            lambda i: connection.run(ADMIT, ["gw:rl:b-sync", "gw:rl:b-sync:t"], [f"s{i}", "w", BIG, 60_000, 1]),
            args.calls,
        )
        async_admit = asyncio.run(asyncio_admit_us(url, args.calls))
        print(f"\none admission script, sync client: {sync_admit:.1f} µs; redis.asyncio client: {async_admit:.1f} µs")
        connection.close()
    finally:
        if own is not None:
            own.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
