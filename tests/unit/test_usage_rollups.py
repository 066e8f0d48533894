"""/v1/usage windows from the day and hour rollups and the raw edges agree with a brute-force sum over the
request rows, for windows of any alignment and every grouping (a seeded random log over four days)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from server.store.sqlite.db import connect
from server.store.sqlite.migrations import migrate
from server.store.sqlite.rollups import DAY_MS, HOUR_MS, add_to_rollup, window
from server.usage_report import aggregate, bucket_of, days_between, percentile

BASE = 1_796_000_000_000 - 1_796_000_000_000 % DAY_MS  # a UTC midnight


def _seed(path: Path) -> sqlite3.Connection:
    conn = connect(path, synchronous="OFF")
    migrate(conn)
    rng = random.Random(11)
    for n in range(3000):
        ended = BASE + rng.randrange(4 * DAY_MS)
        latency = rng.choice([1, 3, 40, 700, 5000, 70_000])
        key, model, ok = rng.choice(["k1", "k2"]), rng.choice(["m1", "m2", "m3"]), rng.random() > 0.1
        tokens, cost = (rng.randrange(100), rng.randrange(50), rng.randrange(5)), rng.randrange(1000)
        conn.execute(
            "INSERT INTO requests (id, project_id, key_id, endpoint, model, stream, status, started_ms, ended_ms)"
            " VALUES (?, 'p', ?, 'chat', ?, 0, ?, ?, ?)",
            (f"r{n}", key, model, "ok" if ok else "error", ended - latency, ended),
        )
        conn.execute(
            "INSERT INTO usage (request_id, project_id, key_id, model, input_tokens, output_tokens, cached_tokens,"
            " cost_micro, price_card, estimated, created_ms) VALUES (?, 'p', ?, ?, ?, ?, ?, ?, '{}', 0, ?)",
            (f"r{n}", key, model, *tokens, cost, ended),
        )
        add_to_rollup(conn, "p", key, model, ended, not ok, tokens, cost, latency)
    return conn


def _brute(conn: sqlite3.Connection, start: int, end: int, group_by: list[str], days: list) -> dict:
    found = conn.execute(
        "SELECT r.key_id, r.model, r.status, r.started_ms, r.ended_ms, u.input_tokens, u.output_tokens,"
        " u.cached_tokens, u.cost_micro FROM requests r JOIN usage u ON u.request_id = r.id"
        " WHERE r.ended_ms >= ? AND r.ended_ms < ?",
        (start, end),
    ).fetchall()
    groups: dict = {}
    for key, model, status, started, ended, tin, tout, cached, cost in found:
        day = next((label for label, lo, hi in days if lo <= ended < hi), None)
        ident = tuple(v for name, v in (("model", model), ("key", key), ("day", day)) if name in group_by)
        total = groups.setdefault(ident, {"requests": 0, "errors": 0, "tokens": [0, 0, 0], "cost": 0, "b": [0] * 25})
        total["requests"] += 1
        total["errors"] += status != "ok"
        total["tokens"] = [a + b for a, b in zip(total["tokens"], (tin, tout, cached), strict=True)]
        total["cost"] += cost
        total["b"][bucket_of(ended - started)] += 1
    return groups


def test_every_window_and_grouping_equals_the_rows(tmp_path: Path) -> None:
    conn = _seed(tmp_path / "gateway.db")
    rng = random.Random(5)
    windows = [(BASE, BASE + 4 * DAY_MS), (BASE + 1, BASE + 4 * DAY_MS - 1)]
    windows += [(BASE + 7 * HOUR_MS + 123, BASE + 2 * DAY_MS + 5 * HOUR_MS + 77), (BASE + 100, BASE + 2000)]
    windows += [tuple(sorted(rng.sample(range(BASE, BASE + 4 * DAY_MS), 2))) for _ in range(6)]
    for start, end in windows:
        for group_by in ([], ["model"], ["key"], ["day"], ["model", "key", "day"]):
            days = days_between(start, end, "UTC") if "day" in group_by else []
            got = aggregate(window(conn, "p", start, end, None, None, group_by, days), group_by)
            want = _brute(conn, start, end, group_by, days)
            assert len(got) == len(want), (start, end, group_by)
            for row in got:
                ident = tuple(row[f] for f in ("model", "key_id", "day") if f in row)
                expected = want[ident]
                tokens = [row["input_tokens"], row["output_tokens"], row["cached_tokens"]]
                assert (row["requests"], row["errors"], tokens, row["cost_micro"]) == (
                    expected["requests"],
                    expected["errors"],
                    expected["tokens"],
                    expected["cost"],
                ), (start, end, group_by, ident)
                assert row["latency_ms"]["p95"] == percentile(expected["b"], 0.95)
