#!/usr/bin/env python3
"""How fast GET /v1/usage answers on a large log: seeds a database with --requests request rows (and their
usage and rollups, day and hour, as the server writes them) over 30 days, then times the window query and
its grouping for typical windows. Prints figures; asserts nothing.

    .venv/bin/python bench/usage_query.py [--requests 1000000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.store.sqlite.db import connect
from server.store.sqlite.migrations import migrate
from server.store.sqlite.rollups import add_to_rollup, window
from server.usage_report import aggregate, days_between

DAY_MS = 86_400_000
KEYS = [f"key_{n:02d}" for n in range(10)]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet", "gemini-flash", "text-embedding-3-small"]


def seed(path: Path, count: int, end_ms: int) -> None:
    conn = connect(path, synchronous="OFF")
    migrate(conn)
    conn.execute("INSERT INTO projects (id, name, billing, created_ms) VALUES ('prj_bench', 'bench', 'postpaid', 0)")
    rng = random.Random(7)
    conn.execute("BEGIN")
    for n in range(count):
        ended = end_ms - rng.randrange(30 * DAY_MS)
        latency = rng.randrange(50, 4000)
        key, model = rng.choice(KEYS), rng.choice(MODELS)
        tokens, cost = (rng.randrange(10, 2000), rng.randrange(0, 800), 0), rng.randrange(1, 5000)
        request_id = f"req_{n:08d}"
        conn.execute(
            "INSERT INTO requests (id, project_id, key_id, endpoint, model, stream, status, started_ms, ended_ms)"
            " VALUES (?, 'prj_bench', ?, 'chat', ?, 0, 'ok', ?, ?)",
            (request_id, key, model, ended - latency, ended),
        )
        conn.execute(
            "INSERT INTO usage (request_id, project_id, key_id, model, input_tokens, output_tokens, cached_tokens,"
            " cost_micro, price_card, estimated, created_ms) VALUES (?, 'prj_bench', ?, ?, ?, ?, 0, ?, '{}', 0, ?)",
            (request_id, key, model, tokens[0], tokens[1], cost, ended),
        )
        add_to_rollup(conn, "prj_bench", key, model, ended, False, tokens, cost, latency)
    conn.execute("COMMIT")
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    try:
        path, end = tmp / "gateway.db", int(time.time() * 1000)
        began = time.perf_counter()
        seed(path, opts.requests, end)
        size = path.stat().st_size >> 20
        print(f"seeded {opts.requests:,} requests in {time.perf_counter() - began:.0f} s ({size} MiB)")
        conn = connect(path)
        cases = [
            ("30 days, by model", end - 30 * DAY_MS, end, ["model"]),
            ("30 days, by model+key+day", end - 30 * DAY_MS, end, ["model", "key", "day"]),
            ("7 days, unaligned edges, by key", end - 7 * DAY_MS - 1_234_567, end - 987_654, ["key"]),
            ("last 24 h, by model", end - DAY_MS, end, ["model"]),
        ]
        for label, start, stop, groups in cases:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                days = days_between(start, stop, "UTC") if "day" in groups else []
                rows = aggregate(window(conn, "prj_bench", start, stop, None, None, groups, days), groups)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"{label:40s} {len(rows):5d} groups   median {sorted(times)[2]:7.1f} ms   max {max(times):7.1f} ms")
        conn.close()
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
