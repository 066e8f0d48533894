#!/usr/bin/env python3
"""CPU time the gateway process spends per request, at a fixed open-loop rate well below saturation.

Latency figures swing with whatever else the machine runs; the gateway's own CPU seconds per request
(utime + stime of its process, read from /proc before and after) swing far less, so this compares two
versions fairly on a shared machine: run it for each, interleaved, and compare medians. Unary chat and
streamed chat are measured separately. Prints figures; asserts nothing.

    PATH=.venv/bin:$PATH bench/cpu_per_request.py [--rate 200] [--seconds 10] [--rounds 3]
    PYTHONPATH=/path/to/other/checkout ... bench/cpu_per_request.py     # measure another version's server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import loadgen

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds so far (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime


async def one_round(url: str, key: str, pid: int, rate: int, seconds: float, stream: bool) -> tuple[float, float]:
    """CPU ms per request over one open-loop round, and the share of it spent in the kernel."""
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    headers = {"authorization": f"Bearer {key}"}
    user0, system0 = cpu_seconds(pid)
    result = await loadgen.open_loop(f"{url}/v1/chat/completions", body, headers, rate, seconds)
    user1, system1 = cpu_seconds(pid)
    spent, system = (user1 - user0) + (system1 - system0), system1 - system0
    done = result.get("ok") or result.get("count") or int(rate * seconds)
    return spent / max(1, int(done)) * 1000, system / spent if spent else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION__KEY=VALUE", help="a config override for the server"
    )
    parser.add_argument("--profile", type=Path, help="py-spy the first round into this file (collapsed stacks)")
    parser.add_argument("--only", choices=("unary", "stream"), help="measure (and profile) one kind of call only")
    parser.add_argument(
        "--gil", action="store_true", help="profile only the thread holding the GIL (what one core's time goes to)"
    )
    opts = parser.parse_args()
    loadgen.install_uvloop()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-cpu-"))
    children = harness.Children()
    try:
        up_port, _ = harness.start_upstream(children, tmp)
        overrides = dict(item.split("=", 1) for item in opts.set)
        gw = harness.setup_gateway(
            children, tmp, up_port, server_env={f"GATEWAY_{k.upper()}": v for k, v in overrides.items()}
        )
        asyncio.run(one_round(gw["url"], gw["key"], gw["pid"], opts.rate, 2, False))  # warm-up
        spy = None
        if opts.profile:
            seconds = str(int(opts.seconds))
            record = [
                "py-spy",
                "record",
                "-r",
                "400",
                "-f",
                "raw",
                "-d",
                seconds,
                "-p",
                str(gw["pid"]),
                "-o",
                str(opts.profile),
                *(["--gil"] if opts.gil else []),
            ]
            spy = harness.subprocess.Popen(record)
        for stream in [kind == "stream" for kind in ((opts.only,) if opts.only else ("unary", "stream"))]:
            figures = [
                asyncio.run(one_round(gw["url"], gw["key"], gw["pid"], opts.rate, opts.seconds, stream))
                for _ in range(opts.rounds)
            ]
            kind = "stream" if stream else "unary "
            shown = "  ".join(f"{f:.3f}" for f, _ in figures)
            median = statistics.median(f for f, _ in figures)
            kernel = statistics.median(k for _, k in figures) * 100
            print(f"{kind} CPU ms/request: median {median:.3f}  (rounds: {shown}; {kernel:.0f}% in the kernel)")
            if spy is not None:
                spy.wait(timeout=opts.seconds + 30)
                spy = None
        print(f"rate {opts.rate} req/s, {opts.seconds:g} s per round; machine: {harness.machine()}")
        return 0
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
