#!/usr/bin/env python3
"""The gateway on PostgreSQL + Redis with `serve --workers N` (1, 2, 4), beside the SQLite single process.

Starts a real PostgreSQL and redis-server (Debian's packages, as the tests do: tests/support/services.py),
the fast stand-in upstream, and for each case a gateway (limits, budget and durable metering on, as bench/run
configures it); measures the closed-loop saturation (32 connections) and the latency p50/p99 at a fixed
open-loop rate. Prints figures; asserts nothing. All traffic stays on 127.0.0.1; every server is this
script's child, stopped by PID.

    PATH=.venv/bin:$PATH bench/fleet_bench.py [--workers 1,2,4] [--seconds 8] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
import loadgen  # noqa: E402

from tests.support.services import start_postgres, start_redis  # noqa: E402

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "hello"}]}


def measure(url: str, key: str, seconds: float, rate: int) -> dict[str, float]:
    headers = {"authorization": f"Bearer {key}"}
    target = f"{url}/v1/chat/completions"
    asyncio.run(loadgen.saturate(target, BODY, headers, 8, 2))  # warm-up
    saturated = asyncio.run(loadgen.saturate(target, BODY, headers, 32, seconds))
    paced = asyncio.run(loadgen.open_loop(target, BODY, headers, rate, seconds))
    return {"rps": float(saturated.get("rps") or 0), "p50_ms": paced.get("p50", 0), "p99_ms": paced.get("p99", 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=300)
    opts = parser.parse_args()
    loadgen.install_uvloop()
    postgres, redis = start_postgres(durable=True), start_redis()
    try:
        cases: list[tuple[str, int]] = [("sqlite", 1)] + [("postgres+redis", int(n)) for n in opts.workers.split(",")]
        for index, (name, workers) in enumerate(cases):
            tmp = Path(tempfile.mkdtemp(prefix="gateway-fleet-bench-"))
            children = harness.Children()
            try:
                up_port, _ = harness.start_upstream(children, tmp)
                extra, env = "", {}
                if name != "sqlite":
                    redis.flush()
                    store = postgres.create_database(f"bench{index}")
                    extra = f'\n[store]\nurl = "{store}"\n\n[state]\nurl = "{redis.url}"\n'
                    env = {"GATEWAY_SERVER__WORKERS": str(workers)}
                gw = harness.setup_gateway(children, tmp, up_port, server_env=env, extra_config=extra)
                figures = measure(gw["url"], gw["key"], opts.seconds, opts.rate)
                print(
                    f"{name:15} workers {workers}: saturation {figures['rps']:7.1f} req/s;"
                    f" at {opts.rate} req/s p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms",
                    flush=True,
                )
            finally:
                children.stop_all()
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        redis.stop()
        postgres.stop()
    print(f"machine: {harness.machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
