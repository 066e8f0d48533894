"""A cheap HTTP/1.1 load generator on raw asyncio sockets (``asyncio.Protocol``).

Cheap on purpose: it shares the machine's cores with the system under test, so each request costs
one prebuilt ``write`` and a hand-rolled response parser (Content-Length and chunked bodies).

* ``saturate``: closed loop, N keep-alive connections, each sends its next request as soon as the
  previous answer is complete; reports req/s.
* ``open_loop``: requests scheduled at fixed intervals whatever the answers do; latency is measured
  from the *scheduled* send time (no coordinated omission); the connection pool grows when every
  connection is busy (up to ``max_conns``), then requests queue for one in FIFO order.
* ``ttfb_stream``: sequential streamed requests on one connection; time to the first ``data:``.

All are coroutines returning plain dicts (times in ms). Status codes other than 200 and socket
errors count as errors; the first error is kept (``first_error``). Every loop is bounded in count
and time. ``python bench/loadgen.py {saturate,open,ttfb} URL ...`` runs one from the shell.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from httpconn import Conn

perf = time.perf_counter


class Target:
    """A URL, body and headers turned into one prebuilt request."""

    def __init__(self, url: str, body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Content-Type: application/json"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append(f"Content-Length: {len(payload)}")
        self.raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload

    async def connect(self) -> Conn:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(Conn, self.host, self.port)
        return proto


class Errors:
    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def add(self, what: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = what[:2000]

    def check(self, status: int, body: bytes) -> bool:
        if status == 200:
            return True
        self.add(f"HTTP {status}: {body[:2000].decode(errors='replace')}")
        return False


def percentile(sorted_xs: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_xs:
        return 0.0
    return sorted_xs[min(len(sorted_xs) - 1, max(0, math.ceil(p / 100 * len(sorted_xs)) - 1))]


def _summary(lat_s: list[float]) -> dict[str, float]:
    xs = sorted(x * 1000 for x in lat_s)
    out = {f"p{p}": round(percentile(xs, p), 3) for p in (50, 90, 99)}
    out["max"] = round(xs[-1], 3) if xs else 0.0
    return out


async def saturate(
    url: str,
    body: bytes | dict[str, Any],
    headers: dict[str, str] | None,
    concurrency: int,
    duration_s: float,
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` keep-alive connections, each always busy, for ``duration_s``."""
    target, errors = Target(url, body, headers), Errors()
    ok = 0
    lat: list[float] = []
    deadline = perf() + duration_s

    async def worker() -> None:
        nonlocal ok
        conn: Conn | None = None
        try:
            while perf() < deadline:
                try:
                    if conn is None or not conn.usable:
                        conn = await target.connect()
                    t0 = perf()
                    status, data = await conn.request(target.raw)
                    if errors.check(status, data):
                        ok += 1
                        lat.append(perf() - t0)
                except (OSError, ValueError) as exc:
                    errors.add(f"{type(exc).__name__}: {exc}")
                    conn = None
                    await asyncio.sleep(0.01)  # do not spin when the server is down
        finally:
            if conn is not None:
                conn.close()

    t_start = perf()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=duration_s + 10)
    for task in pending:  # a request hung past the grace period
        task.cancel()
        errors.add("timeout: request still in flight 10 s after the end")
    if pending:
        await asyncio.wait(pending, timeout=1)
    elapsed = perf() - t_start
    return {
        "rps": round(ok / elapsed, 1),
        "ok": ok,
        "errors": errors.count,
        "first_error": errors.first,
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        **_summary(lat),
    }


async def open_loop(
    url: str,
    body: bytes | dict[str, Any],
    headers: dict[str, str] | None,
    rate: float,
    duration_s: float,
    max_conns: int = 256,
    initial_conns: int = 8,
    drain_s: float = 10.0,
) -> dict[str, Any]:
    """Open loop at ``rate`` req/s for ``duration_s``; latency counted from the scheduled time."""
    target, errors = Target(url, body, headers), Errors()
    idle: list[Conn] = [await target.connect() for _ in range(initial_conns)]
    waiting: deque[asyncio.Future[Conn]] = deque()
    tasks: set[asyncio.Task[None]] = set()
    lat: list[float] = []
    lags: list[float] = []
    opened = peak = len(idle)
    pool_waits = 0
    total = max(1, int(rate * duration_s))

    async def acquire() -> Conn:
        nonlocal opened, peak, pool_waits
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
            opened -= 1
        if opened < max_conns:
            opened += 1
            peak = max(peak, opened)
            try:
                return await target.connect()
            except OSError:
                opened -= 1
                raise
        pool_waits += 1
        fut: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()
        waiting.append(fut)
        return await fut

    async def replace() -> None:
        nonlocal opened
        opened += 1
        try:
            release(await target.connect())
        except OSError as exc:
            opened -= 1
            errors.add(f"{type(exc).__name__}: {exc}")
            while waiting:  # fail one waiter rather than leave it hanging
                fut = waiting.popleft()
                if not fut.done():
                    fut.set_exception(exc)
                    break

    def release(conn: Conn) -> None:
        nonlocal opened
        if not conn.usable:
            opened -= 1
            if waiting:  # a waiter was counting on this connection
                task = asyncio.create_task(replace())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            return
        while waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        idle.append(conn)

    async def one(scheduled: float) -> None:
        conn: Conn | None = None
        try:
            conn = await acquire()
            try:
                status, data = await conn.request(target.raw)
            except OSError:
                if not conn.stale:
                    raise
                release(conn)  # retry once on a fresh connection
                conn = None
                conn = await acquire()
                status, data = await conn.request(target.raw)
            if errors.check(status, data):
                lat.append(perf() - scheduled)
        except (OSError, ValueError) as exc:
            errors.add(f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            if conn is not None:
                conn.close()
            raise
        finally:
            if conn is not None:
                release(conn)

    interval = 1.0 / rate
    t0 = perf() + 0.01
    for i in range(total):
        scheduled = t0 + i * interval
        delay = scheduled - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(perf() - scheduled)  # how late the schedule itself ran
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    send_end = perf()
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=drain_s)
        for fut in waiting:
            fut.cancel()
        waiting.clear()
        for task in pending:
            task.cancel()
            errors.add(f"timeout: no answer {drain_s:g} s after the last send")
        if pending:
            await asyncio.wait(pending, timeout=1)
    for conn in idle:
        conn.close()
    lags.sort()
    return {
        "rate": rate,
        "achieved_rps": round(total / max(send_end - t0, 1e-9), 1),
        "sent": total,
        "count": len(lat),
        "errors": errors.count,
        "first_error": errors.first,
        "max_conns_used": peak,
        "pool_waits": pool_waits,
        "send_lag_p50_ms": round(percentile(lags, 50) * 1000, 3),
        "send_lag_p99_ms": round(percentile(lags, 99) * 1000, 3),
        **_summary(lat),
    }


async def ttfb_stream(
    url: str, body: bytes | dict[str, Any], headers: dict[str, str] | None, n: int, timeout_s: float = 10.0
) -> dict[str, Any]:
    """``n`` sequential streamed requests; time from send to the first SSE ``data:`` bytes."""
    target, errors = Target(url, body, headers), Errors()
    ttfb: list[float] = []
    total: list[float] = []
    conn: Conn | None = None
    for _ in range(n):
        try:
            if conn is None or not conn.usable:
                conn = await target.connect()
            t0 = perf()
            status, data = await asyncio.wait_for(conn.request(target.raw, watch_data=True), timeout_s)
            if errors.check(status, data):
                if not conn.first_data_t or b"data: [DONE]" not in data:
                    errors.add(f"stream without data or [DONE]: {data[:300]!r}")
                else:
                    ttfb.append(conn.first_data_t - t0)
                    total.append(perf() - t0)
        except (OSError, ValueError, TimeoutError) as exc:
            errors.add(f"{type(exc).__name__}: {exc}")
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    s, t = _summary(ttfb), _summary(total)
    return {
        "count": len(ttfb),
        "errors": errors.count,
        "first_error": errors.first,
        "p50": s["p50"],
        "p99": s["p99"],
        "total_p50": t["p50"],
        "total_p99": t["p99"],
    }


def install_uvloop() -> str:
    """Use uvloop for new event loops when importable; returns the loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return f"uvloop {uvloop.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one load pattern against a URL.")
    parser.add_argument("mode", choices=["saturate", "open", "ttfb"])
    parser.add_argument("url")
    parser.add_argument(
        "--body", default='{"model": "bench-model", "messages": [{"role": "user", "content": "hello"}]}'
    )
    parser.add_argument("--header", action="append", default=[], help="Name: value (repeatable)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("-n", type=int, default=100)
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body = args.body.encode()
    install_uvloop()
    if args.mode == "saturate":
        result = asyncio.run(saturate(args.url, body, headers, args.concurrency, args.duration))
    elif args.mode == "open":
        result = asyncio.run(open_loop(args.url, body, headers, args.rate, args.duration))
    else:
        stream_body = json.loads(body) | {"stream": True, "stream_options": {"include_usage": True}}
        result = asyncio.run(ttfb_stream(args.url, json.dumps(stream_body).encode(), headers, args.n))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
