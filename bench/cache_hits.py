#!/usr/bin/env python3
"""How long an embeddings request takes when the answer cache serves it: a real gateway process with the
built-in mock provider (no network), one keep-alive connection, requests one after another. For batches
of 1 and 100 inputs (1536 dimensions, base64 as the SDK asks), it prints p50/p99 of the same request
sent with `x-gateway-cache: bypass` (the mock computes every vector), served whole from the cache (HIT),
and with 90 of 100 inputs cached (the 10 misses go to the mock, the answer is merged). The mock answers
in microseconds, so "bypass" is the gateway's own floor, not a real upstream's latency. The request log
keeps only errors' bodies by default here (`--bodies all` to include it): scrubbing and compressing a
100-vector answer (~800 KB) for the log costs more than everything else on the hit path. Asserts nothing.

    .venv/bin/python bench/cache_hits.py [--requests 300] [--bodies all|errors|off]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Children, free_port, machine, setup_gateway

MODELS = """
[logging]
bodies = "{bodies}"

[[providers]]
name = "mock"
kind = "mock"

[[models]]
name = "bench-embed"
targets = ["mock:bench-embed"]
price = {{ input = 0.02, cache_hit = 0.002 }}
capabilities = ["embeddings"]
"""
DIMENSIONS = 1536


def timed(conn: http.client.HTTPConnection, key: str, inputs: list[str], headers: dict[str, str]) -> float:
    body = json.dumps({"model": "bench-embed", "input": inputs, "encoding_format": "base64", "dimensions": DIMENSIONS})
    start = time.perf_counter()
    conn.request("POST", "/v1/embeddings", body, {"authorization": f"Bearer {key}", **headers})
    answer = conn.getresponse()
    answer.read()
    elapsed = (time.perf_counter() - start) * 1000
    if answer.status != 200:
        raise RuntimeError(f"HTTP {answer.status}")
    return elapsed


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered):8.3f} {p99:8.3f}"


def run(gw: dict[str, Any], requests: int) -> list[tuple[str, list[float]]]:
    host, port = gw["url"].removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    key, bypass = gw["key"], {"x-gateway-cache": "bypass"}
    rows = []
    for size in (1, 100):
        warm = [f"cached input {size}-{i}" for i in range(size)]
        timed(conn, key, warm, {})  # now cached
        rows.append((f"batch {size:>3}, bypass", [timed(conn, key, warm, bypass) for _ in range(requests)]))
        rows.append((f"batch {size:>3}, HIT", [timed(conn, key, warm, {}) for _ in range(requests)]))
        if size == 100:
            partial = []
            for n in range(requests):  # 90 cached inputs and 10 new ones every time
                fresh = [f"new input {n}-{i}" for i in range(10)]
                partial.append(timed(conn, key, warm[:90] + fresh, {}))
            rows.append(("batch 100, 90 HIT + 10 MISS", partial))
    conn.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--bodies", choices=("all", "errors", "off"), default="errors")
    opts = parser.parse_args()
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-cache-bench-") as tmp:
            gw = setup_gateway(children, Path(tmp), free_port(), extra_config=MODELS.format(bodies=opts.bodies))
            rows = run(gw, opts.requests)
    finally:
        children.stop_all()
    print(f"\n{'embeddings, 1536 dims, base64':<32} {'p50 ms':>8} {'p99 ms':>8}")
    for name, samples in rows:
        print(f"{name:<32} {figures(samples)}")
    info = machine()
    print(f"\nmachine: {info['cpu']}, {info['usable_cores']} usable cores, {info['python']}, {info['os']}")
    print(f"{opts.requests} sequential requests per row on one keep-alive connection; [logging] bodies = {opts.bodies}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
