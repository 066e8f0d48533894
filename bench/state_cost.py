#!/usr/bin/env python3
"""What the hot state costs per request, in memory and on Redis: the rate-limit check (key RPM + TPM + plan
RPM in one admission, as a chat call makes), the per-IP net, check-and-reserve of a budget hold, the limits
and the reservation in one script (what the request path runs on Redis), and the settlement. The Redis
figures are wall time per call against a local redis-server (the same scripts the gateway runs), next to
the asyncio client running the same script, which is what the request path would pay had it used
redis.asyncio. Then a whole metered call's hot state, as the request path ran it before (four scripts, and
the token correction in a round trip of its own, as at low rates) and now (three round trips: the per-IP
net, limits + reservation, settlement carrying the correction), with its round trips counted on the wire.
Prints figures and the machine; asserts nothing.

    .venv/bin/python bench/state_cost.py [--calls 5000] [--redis redis://127.0.0.1:6379/0]

Without --redis it starts a redis-server of its own (Debian's package) on a free port and stops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.connection

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


def _checks(limiter: RateLimiter | SharedRateLimiter) -> list[Check]:
    return [
        Check(limiter.window(("key-rpm", "kc"), BIG, 60), 1, "key", "requests"),
        Check(limiter.window(("key-tpm", "kc"), BIG, 60), 500, "key", "tokens"),
        Check(limiter.window(("plan-rpm", "pc", "chat"), BIG, 60), 1, "plan", "requests"),
    ]


def joint(limiter: SharedRateLimiter, budgets: SharedBudgets) -> Callable[[int], object]:
    """The limits and the reservation in one script (then the hold is dropped, unmeasured, so nothing piles up)."""
    now = int(time.time() * 1000)
    held: list[object] = []

    def call(i: int) -> object:
        admission, hold = budgets.limit_and_reserve(
            limiter, _checks(limiter), "prj_bench", "key_bench", 1000, project_budget=BIG, key_budget=BIG,
            prepaid=True, now_ms=now, hold_id=f"j{i}-{len(held)}",
        )  # fmt: skip
        held.append(hold)
        return admission

    return call


def metered_call(
    limiter: RateLimiter | SharedRateLimiter, budgets: Budgets | SharedBudgets, mode: str
) -> Callable[[int], object]:
    """A metered chat call's hot state, in the request path's order: the per-IP net, the limits and the
    reservation, the settlement and its token correction. `mode`: "now" (limits + reservation in one script,
    the correction riding in the settlement's round trip), "sparse" (as before: two scripts, and the
    correction in a round trip of its own after the settlement, as the 20 ms timer sends it when calls are
    sparse) or "busy" (as before, the corrections of 50 calls sent together, as under load)."""
    now = int(time.time() * 1000)
    terms = {"project_budget": BIG, "key_budget": BIG, "prepaid": True, "now_ms": now}

    def call(i: int) -> object:
        limiter.admit([Check(limiter.pace(("ip", f"10.1.{i % 250}.1"), BIG, 600), 1, "ip", "requests")], 0.0)
        if mode == "now":
            assert isinstance(limiter, SharedRateLimiter) and isinstance(budgets, SharedBudgets)
            admission, hold = budgets.limit_and_reserve(
                limiter, _checks(limiter), "prj_bench", "key_bench", 1000, hold_id=f"m{i}-{now}", **terms
            )
            admission.settle_tokens(300)
            return budgets.settle(hold, 700, project_budget=BIG, key_budget=BIG, now_ms=now)
        admission = limiter.admit(_checks(limiter), time.monotonic())
        hold = budgets.reserve("prj_bench", "key_bench", 1000, hold_id=f"s{i}-{now}", **terms)  # type: ignore[arg-type]
        crossings = budgets.settle(hold, 700, project_budget=BIG, key_budget=BIG, now_ms=now)
        admission.settle_tokens(300)
        if isinstance(limiter, SharedRateLimiter) and (mode == "sparse" or i % 50 == 0):
            limiter.flush()
            limiter._flush = _Queued()  # type: ignore[assignment]
        return crossings

    return call


def alternating(calls: dict[str, Callable[[int], object]], total: int, rounds: int = 7) -> dict[str, list[float]]:
    """Wall µs per call of each, in `rounds` short rounds taken in turn (a shared machine's load then falls on
    all of them alike); per round, so the median says more than one long run."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            out[name].append(per_call_us(fn, max(1, total // rounds)))
    return out


class Wire:
    """Round trips to Redis from this process: one per packed send of redis-py (a pipeline is one)."""

    def __init__(self) -> None:
        self.sends = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def counted(conn: redis.connection.AbstractConnection, *args: object, **kwargs: object) -> None:
            self.sends += 1
            original(conn, *args, **kwargs)  # type: ignore[arg-type]

        redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]

    def per_call(self, fn: Callable[[int], object], calls: int = 50) -> float:
        fn(-1)  # scripts loaded, connections open
        before = self.sends
        for i in range(calls):
            fn(i)
        return (self.sends - before) / calls


async def asyncio_admit_us(url: str, calls: int) -> float:
    """The same admission script through redis.asyncio (EVALSHA), one call after another on one loop."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    sha = await client.script_load(ADMIT.source)
    keys = ["gw:rl:bench-async", "gw:rl:bench-async:t"]
    for i in range(200):
        await client.evalsha(sha, 2, *keys, f"w{i}", "w", BIG, 60_000, 1, 1)
    started = time.perf_counter()
    for i in range(calls):
        await client.evalsha(sha, 2, *keys, f"a{i}", "w", BIG, 60_000, 1, 1)
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
        memory_joint = rows[0][1] + rows[2][1]
        joint_limiter = SharedRateLimiter(connection)
        joint_limiter._flush = _Queued()  # type: ignore[assignment]
        shared_joint = joint(joint_limiter, shared_budgets)
        rows.append(("limits + reserve, one script", memory_joint, per_call_us(shared_joint, args.calls), 0.0))
        rows[-1] = (*rows[-1][:3], cpu_us(shared_joint, args.calls))
        print(f"{'per request step':38} {'memory µs':>10} {'redis µs':>10} {'redis CPU µs':>13}")
        for name, memory_us, redis_us, redis_cpu in rows:
            print(f"{name:38} {memory_us:10.1f} {redis_us:10.1f} {redis_cpu:13.1f}")
        wire = Wire()
        calls: dict[str, Callable[[int], object]] = {
            "memory": metered_call(RateLimiter(), Budgets(zone="UTC", month="", balances={"prj_bench": BIG}), "")
        }
        for mode in ("sparse", "busy", "now"):
            call_limiter = SharedRateLimiter(connection)
            call_limiter._flush = _Queued()  # type: ignore[assignment]  # no timer: queued until a script carries it
            calls[mode] = metered_call(call_limiter, shared_budgets, mode)
        trips = {name: wire.per_call(fn, 100) if name != "memory" else 0.0 for name, fn in calls.items()}
        walls = alternating(calls, args.calls)
        names = {
            "memory": "memory",
            "sparse": "redis, before: 4 scripts + correction alone",
            "busy": "redis, before: 4 scripts, corrections batched",
            "now": "redis, now: 3 round trips",
        }
        print(f"\n{'a metered call (IP net, limits, reserve, settle)':48} {'median µs':>9} {'best µs':>8}", end="")
        print(f" {'CPU µs':>7} {'round trips':>11}")
        for name, fn in calls.items():
            cpu = cpu_us(fn, args.calls // 3)
            mid, best = statistics.median(walls[name]), min(walls[name])
            print(f"{names[name]:48} {mid:9.1f} {best:8.1f} {cpu:7.1f} {trips[name]:11.2f}")
        sync_admit = per_call_us(
            lambda i: connection.run(ADMIT, ["gw:rl:b-sync", "gw:rl:b-sync:t"], [f"s{i}", "w", BIG, 60_000, 1, 1]),
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
