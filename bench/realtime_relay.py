#!/usr/bin/env python3
"""What the realtime proxy adds per event: the same responses straight from the stand-in OpenAI realtime
upstream (the floor) and through a real gateway process (reservation, metering of each delta, the usage row
committed before response.done, the relay's queue), on 127.0.0.1. Prints figures; asserts nothing.

    .venv/bin/python bench/realtime_relay.py [--responses 20] [--chunks 200] [--chunk-bytes 4800]

Per response: the time from `response.create` to its first audio delta, and to `response.done`. The
relay runs beside the upstream and the client (a pipeline), so its cost hides in the wall time of a whole
response; the gateway process's own CPU time divided by the events it relayed is the cost per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect

from tests.e2e.test_realtime import PROVIDER_KEY, config
from tests.support.gateway import GatewayProcess
from tests.upstreams.asgi_kit import start_upstream_process
from tests.upstreams.openai_realtime import MODULE


async def _responses(url: str, headers: dict[str, str], count: int) -> tuple[list[float], list[float], int]:
    """(first audio delta ms, response.done ms, events per response) over `count` responses on one session."""
    first, whole, events = [], [], 0
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        for _ in range(count):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "response.create"}))
            got_first, events = None, 0
            while True:
                event = json.loads(await ws.recv())
                events += 1
                if event["type"] == "response.output_audio.delta" and got_first is None:
                    got_first = time.perf_counter()
                if event["type"] == "response.done":
                    break
            assert got_first is not None
            first.append((got_first - started) * 1000)
            whole.append((time.perf_counter() - started) * 1000)
    return first, whole, events


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-bytes", type=int, default=4800)
    args = parser.parse_args()
    up = start_upstream_process(module=MODULE)
    gw = None
    try:
        up.set_behavior(audio_chunks=args.chunks, chunk_bytes=args.chunk_bytes)
        folder = Path(tempfile.mkdtemp(prefix="realtime-bench-"))
        gw = GatewayProcess(folder, config(up), {"STANDIN_REALTIME_KEY": PROVIDER_KEY}, "access_log = false\n").start()
        key = gw.new_key("bench")
        direct_url = up.base_url.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
        gateway_url = gw.url.replace("http://", "ws://") + "/v1/realtime?model=up-realtime"
        runs, cpu_used = {}, {}
        for name, url, headers in (
            ("direct", direct_url, {"Authorization": f"Bearer {PROVIDER_KEY}"}),
            ("gateway", gateway_url, {"Authorization": f"Bearer {key}"}),
        ):
            up.set_behavior(audio_chunks=args.chunks, chunk_bytes=args.chunk_bytes)
            asyncio.run(_responses(url, headers, 2))  # warm up
            up.set_behavior(audio_chunks=args.chunks, chunk_bytes=args.chunk_bytes)
            assert gw.proc is not None
            cpu = _cpu_s(gw.proc.pid)
            runs[name] = asyncio.run(_responses(url, headers, args.responses))
            cpu_used[name] = _cpu_s(gw.proc.pid) - cpu
        print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
        events = runs["gateway"][2]
        print(f"{args.responses} responses of {events} events ({args.chunks} audio deltas of {args.chunk_bytes} bytes)")
        print(f"{'':10} {'first delta p50/p95 ms':>24} {'response.done p50/p95 ms':>26}")
        for name, (first, whole, _) in runs.items():
            first_text = f"{_p(first, 50):>11.2f} / {_p(first, 95):<10.2f}"
            print(f"{name:10} {first_text} {_p(whole, 50):>12.2f} / {_p(whole, 95):<10.2f}")
        relayed = events * args.responses
        per_event = (cpu_used["gateway"] - cpu_used["direct"]) / relayed * 1_000_000
        print(f"gateway CPU per relayed event: {per_event:.1f} µs ({relayed} events; idle CPU while direct subtracted)")
        print(f"first delta added (p50): {_p(runs['gateway'][0], 50) - _p(runs['direct'][0], 50):.2f} ms")
    finally:
        if gw is not None:
            gw.stop()
        up.stop()


if __name__ == "__main__":
    main()
