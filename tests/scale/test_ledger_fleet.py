"""The ledger's invariants on PostgreSQL with several gateway processes writing at once: every debit is
in the chain (which verifies), the balance is exact, a source id is recorded once, and the ledger refuses
UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from server.billing.ledger import LedgerChain
from server.gateway import recovery
from server.settings import StorageSettings, StoreSettings
from server.store.postgres.store import PostgresStore
from tests.support.services import Postgres

REPO = Path(__file__).resolve().parents[2]
KEY = "ab" * 32
WORKERS, EACH = 3, 200


async def _setup(url: str) -> None:
    store = PostgresStore(StoreSettings(url=url), StorageSettings(), LedgerChain(bytes.fromhex(KEY)))
    await store.open(0, recovery)
    try:
        await store.create_project({"id": "prj_1", "name": "p", "plan": None, "billing": "prepaid", "created_ms": 1})
        await store.create_key(
            {"id": "key_1", "project_id": "prj_1", "name": "k", "key_hash": "h", "prefix": "sk", "created_ms": 1}
            | {"scopes": None, "expires_ms": None, "revoked_ms": None}
        )
        await store.append_ledger("prj_1", "adjustment", "seed", 10_000_000, "seed", 2)
    finally:
        await store.close()


async def _verify(url: str) -> tuple[list[dict[str, object]], int]:
    store = PostgresStore(StoreSettings(url=url), StorageSettings(), LedgerChain(bytes.fromhex(KEY)))
    await store.open(0, recovery)
    try:
        return await store.verify_ledger(), len(await store.ledger_entries("prj_1"))
    finally:
        await store.close()


def test_three_processes_debiting_one_project_keep_the_chain_and_the_balance_exact(postgres: Postgres) -> None:
    url = postgres.create_database("ledger_fleet")
    asyncio.run(_setup(url))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.scale.ledger_worker", url, KEY, "prj_1", "key_1", f"w{n}", str(EACH)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(WORKERS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    debited = sum(r["debited"] for r in results)
    assert sum(r["bonus_created"] for r in results) == 1  # one source id, one entry, whoever came first
    [check], count = asyncio.run(_verify(url))
    assert check["ok"], check["problems"][:3]
    assert count == 1 + WORKERS * EACH + 1
    assert check["balance_micro"] == 10_000_000 - debited + 500
    with psycopg.connect(url) as conn:
        usage, events, open_holds = conn.execute(
            "SELECT (SELECT COUNT(*) FROM usage), (SELECT COUNT(*) FROM outbox),"
            " (SELECT COUNT(*) FROM holds WHERE status = 'open')"
        ).fetchone()
    assert (usage, events, open_holds) == (WORKERS * EACH, WORKERS * EACH, 0)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE ledger SET amount_micro = 0", "DELETE FROM ledger", "TRUNCATE ledger CASCADE"],
)
def test_the_ledger_refuses_to_change_what_it_recorded(postgres: Postgres, statement: str) -> None:
    url = postgres.create_database("ledger_append_only")
    asyncio.run(_setup(url))
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute(statement)
