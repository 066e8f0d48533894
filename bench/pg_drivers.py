#!/usr/bin/env python3
"""psycopg 3 (sync, as the store's writer thread uses it) against asyncpg, on the statements a request's
closing runs: per transaction, a row lock on the project, then the request update, usage insert, ledger
insert, balance update, hold update and two rollup upserts (8 statements, each awaited: the store's rules
read some answers before the next statement). One connection each, on a real PostgreSQL started for the
run (fsync on). asyncpg is optional (`pip install asyncpg`); without it only psycopg is timed. Prints
figures; asserts nothing.

    .venv/bin/python bench/pg_drivers.py [--transactions 3000] [--per-group 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.harness import machine
from tests.support.services import start_postgres

SCHEMA = (
    "CREATE TABLE p (id TEXT PRIMARY KEY, balance BIGINT NOT NULL, head TEXT NOT NULL)",
    "CREATE TABLE r (id TEXT PRIMARY KEY, status TEXT, ended BIGINT)",
    "CREATE TABLE u (id TEXT PRIMARY KEY, cost BIGINT, card TEXT)",
    "CREATE TABLE l (id TEXT PRIMARY KEY, amount BIGINT, after BIGINT, hash TEXT)",
    "CREATE TABLE h (id TEXT PRIMARY KEY, status TEXT)",
    "CREATE TABLE roll (k TEXT PRIMARY KEY, n BIGINT NOT NULL, cost BIGINT NOT NULL)",
)
STATEMENTS = (
    "SELECT balance, head FROM p WHERE id = $1 FOR UPDATE",
    "UPDATE r SET status = 'ok', ended = $2 WHERE id = $1",
    "INSERT INTO u (id, cost, card) VALUES ($1, $2, '{}')",
    "INSERT INTO l (id, amount, after, hash) VALUES ($1, $2, $2, 'h')",
    "UPDATE p SET balance = balance - $2, head = $1 WHERE id = 'p1'",
    "UPDATE h SET status = 'settled' WHERE id = $1 AND $2 > 0",
    "INSERT INTO roll (k, n, cost) VALUES (left($1, 0) || 'hour', 1, $2) ON CONFLICT (k) DO UPDATE SET n = roll.n + 1,"
    " cost = roll.cost + EXCLUDED.cost",
    "INSERT INTO roll (k, n, cost) VALUES (left($1, 0) || 'day', 1, $2) ON CONFLICT (k) DO UPDATE SET n = roll.n + 1,"
    " cost = roll.cost + EXCLUDED.cost",
)


def _args(i: int, n: int) -> tuple[Any, ...]:
    return ("p1",) if n == 0 else (f"x{i}", 40)


def _prepare(url: str, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("p", "r", "u", "l", "h", "roll"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO p VALUES ('p1', 0, '')")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO r (id) VALUES (%s)", [(f"x{i}",) for i in range(count)])
            cur.executemany("INSERT INTO h (id) VALUES (%s)", [(f"x{i}",) for i in range(count)])


def with_psycopg(url: str, count: int, per_group: int) -> float:
    sqls = [s.replace("$1", "%(a)s").replace("$2", "%(b)s") for s in STATEMENTS]
    with psycopg.connect(url, autocommit=True) as conn:
        began = time.perf_counter()
        for start in range(0, count, per_group):
            conn.execute("BEGIN")
            for i in range(start, min(count, start + per_group)):
                for n, sql in enumerate(sqls):
                    args = _args(i, n)
                    cur = conn.execute(sql, {"a": args[0], "b": args[1] if len(args) > 1 else 0}, prepare=True)
                    if n == 0:
                        cur.fetchone()
            conn.execute("COMMIT")
        return time.perf_counter() - began


async def with_asyncpg(url: str, count: int, per_group: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        began = time.perf_counter()
        for start in range(0, count, per_group):
            async with conn.transaction():
                for i in range(start, min(count, start + per_group)):
                    for n, sql in enumerate(STATEMENTS):
                        if n == 0:
                            await conn.fetchrow(sql, *_args(i, n))
                        else:
                            await conn.execute(sql, *_args(i, n))
        return time.perf_counter() - began
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--per-group", type=int, default=50)
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": machine(), "closings": args.transactions, "statements_each": 8}
    postgres = start_postgres(durable=True)
    try:
        url = postgres.create_database("drivers")
        for round_ in (1, 2):  # twice each, alternating: the machine is shared
            _prepare(url, args.transactions)
            seconds = with_psycopg(url, args.transactions, args.per_group)
            report[f"psycopg_per_s_{round_}"] = round(args.transactions / seconds)
            try:
                _prepare(url, args.transactions)
                seconds = asyncio.run(with_asyncpg(url, args.transactions, args.per_group))
                report[f"asyncpg_per_s_{round_}"] = round(args.transactions / seconds)
            except ImportError:
                report["asyncpg"] = "not installed"
    finally:
        postgres.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
