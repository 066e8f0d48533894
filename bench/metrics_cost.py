#!/usr/bin/env python3
"""Per-call cost of the Prometheus metrics (server/metrics.py) on the request path.

A call pays `Metrics.closed` when it settles (its status, tokens, spend, one upstream attempt) and
`Metrics.answered` when it is answered (the overhead histogram); the arrival time is one
`time.perf_counter()` in the request-id layer. Each is timed alone with timeit (best of the rounds),
because a few microseconds are far below what `bench/run` can resolve on a shared machine. For
comparison it also times the same counting done with prometheus_client's own labelled Counter
(`labels(...).inc()` takes a lock and checks the labels on every call).

    .venv/bin/python bench/metrics_cost.py [--calls 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import machine
from prometheus_client import CollectorRegistry, Counter

from server.metrics import Metrics
from server.types import Attempt, Charge, Outcome, Target, Usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    metrics = Metrics()
    target = Target("up", "gpt-4o-mini")
    outcome = Outcome(
        status="ok",
        http_status=200,
        target=target,
        usage=Usage(input_tokens=12, output_tokens=30),
        charge=Charge(37, {}),
        attempts=[Attempt("up:gpt-4o-mini", 200, 1.2)],
    )
    arrived = time.perf_counter()
    library = Counter("c", "c", ("model", "endpoint", "status"), registry=CollectorRegistry())
    cases = {
        "closed (status, 2 token kinds, spend, 1 attempt)": lambda: metrics.closed(
            "gpt-4o-mini", "chat", outcome, target
        ),
        "answered (overhead histogram)": lambda: metrics.answered("chat", False, arrived, outcome.attempts),
        "arrival (perf_counter)": time.perf_counter,
        "for comparison: one prometheus_client labels().inc()": lambda: library.labels("m", "chat", "ok").inc(),
    }
    for name, case in cases.items():
        best = min(timeit.repeat(case, number=args.calls, repeat=args.rounds)) / args.calls * 1e6
        print(f"{name:55s} {best:6.2f} µs")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
