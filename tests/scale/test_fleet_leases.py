"""Process leases on PostgreSQL: a process killed with SIGKILL leaves pending requests and open holds;
another process closes them as a restart would (the stream billed for what its checkpoint proves, the
plain call released), once; a process whose lease expired (another host, silent) is closed the same way;
background work is leased to one process at a time and passes on when its holder stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg

from server.billing.ledger import LedgerChain
from server.gateway import recovery
from server.settings import StorageSettings, StoreSettings
from server.store.postgres.store import PostgresStore
from tests.scale.dying_worker import job, job_hold
from tests.scale.test_ledger_fleet import KEY, _setup
from tests.support.services import Postgres

REPO = Path(__file__).resolve().parents[2]


def _store(url: str) -> PostgresStore:
    settings = StoreSettings(url=url, instance_ttl_s=2)
    return PostgresStore(settings, StorageSettings(), LedgerChain(bytes.fromhex(KEY)))


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_a_killed_process_requests_are_closed_by_another_once(postgres: Postgres) -> None:
    url = postgres.create_database("fleet_killed")
    asyncio.run(_setup(url))

    async def live_job() -> PostgresStore:  # a process that stays up, running a job of its own
        live = _store(url)
        await live.open(0, recovery)
        await live.media.create_job(job("job-live", "prj_1", "key_1"), job_hold("job-live", "prj_1", "key_1"))
        return live

    loop = asyncio.new_event_loop()  # the live process's loop keeps running (renewing its lease) meanwhile
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    live = asyncio.run_coroutine_threadsafe(live_job(), loop).result(30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.scale.dying_worker", url, KEY, "prj_1", "key_1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _rows(url, "SELECT COUNT(*) FROM requests WHERE status = 'pending'") == [(2,)]

    async def survivors() -> tuple[int, int, list[str], list[str]]:
        first, second = _store(url), _store(url)
        loaded = await first.open(0, recovery)  # at start: a dead PID on this host is dead at once
        again = await second.open(0, recovery)
        try:
            adopted = [hold.id for hold in loaded.open_holds]
            return len(loaded.interrupted), await second.beat(), adopted, [hold.id for hold in again.open_holds]
        finally:
            await first.close()
            await second.close()

    # the dead process's requests closed by the first, not again by the second; its job (hold) adopted by
    # the first only; the live process's job stays its own
    assert asyncio.run(survivors()) == (2, 0, ["req-job-dead"], [])
    asyncio.run_coroutine_threadsafe(live.close(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    runner.join(10)
    loop.close()
    requests = dict(_rows(url, "SELECT id, status FROM requests"))
    holds = dict(_rows(url, "SELECT id, status FROM holds"))
    assert requests == {"req-stream": "interrupted", "req-plain": "interrupted"}
    assert holds == {"req-stream": "settled", "req-plain": "released", "req-job-dead": "open", "req-job-live": "open"}
    debits = _rows(url, "SELECT source_id, amount_micro FROM ledger WHERE kind = 'usage'")
    assert len(debits) == 1 and debits[0][0] == "req-stream" and int(str(debits[0][1])) < 0  # billed once
    assert _rows(url, "SELECT COUNT(*) FROM instances") == [(0,)]


def test_a_silent_process_whose_lease_expired_is_closed_and_its_work_taken_over(postgres: Postgres) -> None:
    url = postgres.create_database("fleet_expired")
    asyncio.run(_setup(url))

    async def scenario() -> None:
        alive = _store(url)
        await alive.open(0, recovery)
        try:
            with psycopg.connect(url) as conn:  # a process on another host that stopped renewing 10 s ago
                conn.execute(
                    "INSERT INTO instances (id, host, pid, started_ms, renewed_ms)"
                    " VALUES ('ins_gone', 'elsewhere', 1, 0, (extract(epoch from now()) * 1000)::bigint - 10000)"
                )
                conn.execute("INSERT INTO leases (name, holder, expires_ms) VALUES ('maintenance', 'ins_gone', 0)")
                conn.execute(
                    "INSERT INTO requests (id, project_id, key_id, endpoint, model, stream, status, started_ms,"
                    " owner) VALUES ('req-gone', 'prj_1', 'key_1', 'chat', 'm', 0, 'pending', 1, 'ins_gone')"
                )
            assert await alive.beat() == 1
            assert await alive.beat() == 0  # once
            assert await alive.hold_lease("maintenance")
            other = _store(url)
            await other.open(0, recovery)
            try:
                assert not await other.hold_lease("maintenance")  # held by `alive`
                await alive.close()  # a clean stop gives its leases up
                assert await other.hold_lease("maintenance")
            finally:
                await other.close()
        finally:
            await alive.close()

    asyncio.run(scenario())
    assert _rows(url, "SELECT status FROM requests WHERE id = 'req-gone'") == [("interrupted",)]
