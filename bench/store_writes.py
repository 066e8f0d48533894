#!/usr/bin/env python3
"""How many request closings per second the store commits: the request path's close (request row, usage
row, ledger debit moving the project's balance and chain, hold settled, an outbox event, rollups; one
transaction each, group-committed), on SQLite (synchronous=FULL, the default) and on a real PostgreSQL
started for the run (fsync on, synchronous_commit on: durable, like SQLite's FULL), from one process and
from several processes on one project (PostgreSQL only: the project's row lock serialises their chains).
Every closing is awaited like the request path awaits it; latency is that wait. Prints figures; asserts
nothing.

    .venv/bin/python bench/store_writes.py [--closings 5000] [--in-flight 64] [--processes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import machine  # noqa: E402
from server.billing.ledger import LedgerChain  # noqa: E402
from server.gateway import recovery  # noqa: E402
from server.settings import StorageSettings, StoreSettings  # noqa: E402
from server.store.postgres.store import PostgresStore  # noqa: E402
from server.store.protocol import Closing, Event, HoldRecord, Intent  # noqa: E402
from server.store.sqlite.store import SqliteStore  # noqa: E402
from server.types import Call, Caller, Charge, Outcome, Usage  # noqa: E402
from tests.support.services import start_postgres  # noqa: E402

KEY = bytes.fromhex("cd" * 32)
CARD = {"input": 1_000_000, "output": 2_000_000}


def _store(target: str) -> Any:
    chain = LedgerChain(KEY)
    if target.startswith("postgresql://"):
        return PostgresStore(StoreSettings(url=target), StorageSettings(), chain)
    return SqliteStore(Path(target), StorageSettings(), chain)


async def _seed(target: str) -> None:
    store = _store(target)
    await store.open(0, recovery)
    try:
        await store.create_project({"id": "prj_b", "name": "b", "plan": None, "billing": "prepaid", "created_ms": 1})
        row = {"id": "key_b", "project_id": "prj_b", "name": "k", "key_hash": "h", "prefix": "sk", "created_ms": 1}
        await store.create_key({**row, "scopes": None, "expires_ms": None, "revoked_ms": None})
        await store.append_ledger("prj_b", "adjustment", "seed", 10**12, "seed", 1)
    finally:
        await store.close()


async def closings(target: str, prefix: str, count: int, in_flight: int) -> dict[str, Any]:
    """Close `count` requests, `in_flight` at a time; returns the rate and the waits' percentiles."""
    store = _store(target)
    await store.open(0, recovery)
    caller = Caller("prj_b", "key_b", "127.0.0.1")
    waits: list[float] = []
    slots = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with slots:
            request_id = f"{prefix}-{i}"
            call = Call(request_id=request_id, endpoint="chat", model="m", body={}, started_ms=10 + i)
            hold = HoldRecord(request_id, "prj_b", "key_b", 10_000, True, CARD)
            outcome = Outcome(
                status="ok", http_status=200, usage=Usage(input_tokens=20, output_tokens=10),
                charge=Charge(micro=40, card=CARD), ended_ms=20 + i,
            )  # fmt: skip
            event = Event(f"evt-{request_id}", "request.completed", "prj_b", {"id": request_id}, 20 + i)
            store.record_intent(Intent(caller, call, hold))
            began = time.perf_counter()
            await store.record_closing(Closing(caller, call, outcome, hold.id, "settled", (event,)))
            waits.append(time.perf_counter() - began)

    try:
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - began
        commits = store.writer.commits
    finally:
        await store.close()
    waits.sort()
    return {
        "closings": count,
        "seconds": round(elapsed, 3),
        "per_s": round(count / elapsed),
        "wait_p50_ms": round(waits[len(waits) // 2] * 1000, 2),
        "wait_p99_ms": round(waits[int(len(waits) * 0.99)] * 1000, 2),
        "group_commits": commits,
    }


def _fleet(url: str, processes: int, count: int, in_flight: int) -> dict[str, Any]:
    """`processes` OS processes closing `count` requests each on one project, at once."""
    argv = [sys.executable, __file__, "--worker", url, "--closings", str(count), "--in-flight", str(in_flight)]
    began = time.perf_counter()
    procs = [subprocess.Popen([*argv, "--prefix", f"p{n}"], stdout=subprocess.PIPE, cwd=ROOT) for n in range(processes)]
    results = [json.loads(proc.communicate()[0].decode().strip().splitlines()[-1]) for proc in procs]
    wall = time.perf_counter() - began  # includes each process's start-up (imports, connecting)
    inner = max(r["seconds"] for r in results)
    return {
        "processes": processes,
        "closings": processes * count,
        "per_s": round(processes * count / inner),
        "wall_s_with_startup": round(wall, 2),
        "wait_p99_ms_worst": max(r["wait_p99_ms"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--closings", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--worker")
    parser.add_argument("--prefix", default="w")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(closings(args.worker, args.prefix, args.closings, args.in_flight))))
        return
    report: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "gateway.db")
        asyncio.run(_seed(path))
        report["sqlite_one_process"] = asyncio.run(closings(path, "s", args.closings, args.in_flight))
    postgres = start_postgres(durable=True)
    try:
        url = postgres.create_database("bench")
        asyncio.run(_seed(url))
        report["postgres_one_process"] = asyncio.run(closings(url, "s", args.closings, args.in_flight))
        report["postgres_fleet"] = _fleet(url, args.processes, args.closings, args.in_flight)
        check = _store(url)

        async def verify() -> list[dict[str, Any]]:
            await check.open(0, recovery)
            try:
                return await check.verify_ledger()
            finally:
                await check.close()

        report["postgres_ledger_verifies"] = all(r["ok"] for r in asyncio.run(verify()))
    finally:
        postgres.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("GATEWAY_LOG_LEVEL", "WARNING")
    main()
