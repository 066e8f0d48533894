#!/usr/bin/env python3
"""Soak: the gateway under sustained saturation, printing every 10 s what must stay bounded.

    .venv/bin/python bench/soak.py [--requests 1000000] [--concurrency 32] [--interval 10] [--ips 1]

Starts the fast stand-in upstream and `gatewayctl serve` (as bench/run does: limits, budget and
`synchronous = FULL` on), then runs closed-loop load until `--requests` answers have come back, and
prints per interval: answers so far, req/s, the gateway's RSS (MiB), and the sizes of the database and
its WAL (MiB). It prints figures; it asserts nothing. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import loadgen

BODY = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hello"}]}).encode()


def _mib(path: Path) -> float:
    try:
        return os.stat(path).st_size / (1 << 20)
    except OSError:
        return 0.0


async def soak(url: str, key: str, pid: int, data: Path, opts: argparse.Namespace) -> None:
    done, started = 0, time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    print(f"{'elapsed s':>9} {'answers':>10} {'req/s':>8} {'RSS MiB':>8} {'db MiB':>8} {'WAL MiB':>8}", flush=True)
    wal_peak = rss_peak = 0.0
    while done < opts.requests:
        result = await loadgen.saturate(url, BODY, headers, opts.concurrency, opts.interval)
        done += result["ok"]
        rss = harness.peak_rss_mib(pid)["now"]
        wal = _mib(data / "gateway.db-wal")
        wal_peak, rss_peak = max(wal_peak, wal), max(rss_peak, rss)
        print(
            f"{time.monotonic() - started:9.0f} {done:10d} {result['rps']:8.0f} {rss:8.1f}"
            f" {_mib(data / 'gateway.db'):8.1f} {wal:8.1f}",
            flush=True,
        )
        if result["ok"] == 0:
            print(f"no answers in an interval: {result['first_error']}", flush=True)
            break
    print(f"peak WAL {wal_peak:.1f} MiB, peak RSS {rss_peak:.1f} MiB after {done} answers", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--tmp-dir", type=Path, default=None)
    opts = parser.parse_args()
    loadgen.install_uvloop()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-soak-", dir=opts.tmp_dir))
    children = harness.Children()
    try:
        up_port, _ = harness.start_upstream(children, tmp)
        gw = harness.setup_gateway(children, tmp, up_port)
        print(f"gateway at {gw['url']} (pid {gw['pid']}); data in {tmp / 'data'}", flush=True)
        asyncio.run(soak(f"{gw['url']}/v1/chat/completions", gw["key"], gw["pid"], tmp / "data", opts))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
