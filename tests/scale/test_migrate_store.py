"""`gatewayctl migrate-store` moves a SQLite store of ~100k rows (25k requests with their holds, usage
rows, ledger debits, rollups and events) and its stored files' bytes into an empty PostgreSQL database: the
copy verifies (counts, balances, every chain, every live file's size and hash), a second copy into the same
database is refused in one line, a gateway started on PostgreSQL closes the left-pending requests as a
restart would, serves the files byte for byte (a deleted one is not carried), its ledger verifies, and the
month's invoices exported from both stores are byte-identical."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from server.billing.invoice_render import render_csv, render_json
from server.billing.ledger import open_chain
from server.billing.service import close_month
from server.files.service import Meta
from server.gateway import Gateway
from server.operations import create_key, create_project, credit_wallet
from server.settings import Settings, load_settings
from server.store.protocol import Closing, Event, HoldRecord, Intent
from server.store.sqlite import records
from server.types import Call, Caller, Charge, Outcome, Usage
from tests.scale.engines import BASE
from tests.support.services import Postgres

REPO = Path(__file__).resolve().parents[2]
OCTOBER = 1_791_000_000_000  # 2026-10-03 in UTC
REQUESTS = 25_000  # ~100k rows in all; bench/store_writes.py times larger copies
PENDING = 5
CARD = {"input": 1_000_000, "output": 2_000_000, "cached_input": 1_000_000}
FILES = {"big.bin": os.urandom((1 << 20) * 2 + 777), "note.txt": b"kept across the move", "gone.txt": b"deleted"}


async def _catalog(settings: Settings) -> tuple[list[Caller], dict[str, tuple[str, bytes]]]:
    """Three projects with keys and wallets; stored files of the first (one deleted): file id -> (project, bytes)."""
    gw = await Gateway.start(settings)
    try:
        callers = []
        for name in ("alpha", "beta", "gamma"):
            project = await create_project(gw, name, billing="prepaid" if name == "alpha" else "postpaid")
            key, _ = await create_key(gw, name)
            await credit_wallet(gw, name, 50_000_000, "opening balance", f"open-{name}")
            callers.append(Caller(project.id, key.id, "127.0.0.1"))
        files = {}
        for name, data in FILES.items():
            meta = Meta(name, "application/octet-stream", "user_data", "upload", f"req_{name}")
            stored = await gw.files.add_bytes(callers[0].project_id, data, meta)
            files[stored.id] = (stored.project_id, data)
        gone = next(file_id for file_id, (_, data) in files.items() if data == FILES["gone.txt"])
        await gw.files.delete(callers[0].project_id, gone)
        del files[gone]
        return callers, files
    finally:
        await gw.close()


async def _served(settings: Settings, files: dict[str, tuple[str, bytes]]) -> dict[str, bytes]:
    """Each file's bytes as a gateway on `settings` serves them (through its blob store)."""
    gw = await Gateway.start(settings)
    try:
        return {file_id: await gw.files.blobs.read(project, file_id) for file_id, (project, _) in files.items()}
    finally:
        await gw.close()


def _bulk(settings: Settings, callers: list[Caller]) -> None:
    """The requests closed by the store's own operations (records.insert_intent, records.close) in one
    transaction: the rows a server would have written, fast."""
    chain, _ = open_chain(settings.ledger_key_path)
    conn = sqlite3.connect(settings.database_path, isolation_level=None)
    conn.execute("BEGIN")
    for i in range(REQUESTS + PENDING):
        caller = callers[i % len(callers)]
        started = OCTOBER + i * 20_000
        call = Call(
            request_id=f"req_{i:07d}", endpoint="chat", model="m", body={}, started_ms=started, stream=i % 4 == 0
        )
        hold = HoldRecord(call.request_id, caller.project_id, caller.key_id, 9_000, i % 3 == 0, CARD)
        records.insert_intent(Intent(caller, call, hold))(conn)
        if i >= REQUESTS:
            continue  # left pending: as if the process had died
        usage = Usage(input_tokens=50 + i % 97, output_tokens=i % 13, cached_tokens=i % 5)
        status = "ok" if i % 50 else "upstream_error"
        charged = status == "ok"
        outcome = Outcome(
            status=status,
            http_status=200 if charged else 502,
            usage=usage if charged else None,
            charge=Charge(micro=60 + i % 89, card=CARD) if charged else None,
            ended_ms=started + 300 + i % 1000,
        )
        events = (Event(f"evt_{i}", "usage.recorded", caller.project_id, {"i": i}, started),) if i % 100 == 0 else ()
        hold_status = "settled" if charged else "released"
        records.close(Closing(caller, call, outcome, hold.id, hold_status, events), chain)(conn)
    conn.execute("COMMIT")
    conn.close()


async def _invoices(settings: Settings) -> tuple[dict[str, bytes], list[dict[str, Any]], int]:
    gw = await Gateway.start(settings)
    try:
        documents = await close_month(gw, "2026-10", push_stripe=False)
        files = {}
        for doc in documents:
            files[f"{doc['number']}.csv"] = render_csv(doc)
            files[f"{doc['number']}.json"] = render_json(doc)
        pending = len(await gw.store.list_requests({"status": "pending"}, 100))
        return files, await gw.store.verify_ledger(), pending
    finally:
        await gw.close()


def test_migrate_store_moves_a_busy_store_and_the_invoices_stay_byte_identical(
    tmp_path: Path, postgres: Postgres
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(BASE)
    lite = load_settings(config)
    callers, files = asyncio.run(_catalog(lite))
    _bulk(lite, callers)
    url = postgres.create_database("migrate_store")

    run = subprocess.run(
        [sys.executable, "-m", "gatewayctl", "migrate-store", "--config", str(config), "--to", url, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and report["tables"]["requests"] == {"source": REQUESTS + PENDING, "target": REQUESTS + PENDING}
    assert report["ledger_entries"] == 3 + REQUESTS - REQUESTS // 50
    assert report["rows"] > 95_000
    assert report["files"] == {"source": 2, "target": 2, "bytes": sum(len(data) for _, data in files.values())}
    again = subprocess.run(
        [sys.executable, "-m", "gatewayctl", "migrate-store", "--config", str(config), "--to", url],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "not empty" in again.stderr and len(again.stderr.strip().splitlines()) == 1

    # Each store closes its left-pending requests at start (not billed: not streams), then the month.
    lite_files, lite_checks, lite_pending = asyncio.run(_invoices(lite))
    pg_config = tmp_path / "config-pg.toml"
    pg_config.write_text(BASE + f'\n[store]\nurl = "{url}"\n')
    pg_settings = load_settings(pg_config)
    pg_files, pg_checks, pg_pending = asyncio.run(_invoices(pg_settings))
    assert asyncio.run(_served(pg_settings, files)) == {file_id: data for file_id, (_, data) in files.items()}
    assert lite_pending == pg_pending == 0
    assert all(c["ok"] for c in pg_checks) and len(pg_checks) == 3
    assert [(c["entries"], c["balance_micro"]) for c in pg_checks] == [
        (c["entries"], c["balance_micro"]) for c in lite_checks
    ]
    assert sorted(lite_files) == sorted(pg_files) and len(lite_files) == 6
    for name, content in lite_files.items():
        assert pg_files[name] == content, name
