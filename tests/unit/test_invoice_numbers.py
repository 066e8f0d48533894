"""Invoice numbers: from a counter row moved in the numbering transaction, so concurrent closes never
share a number; drafts never consume one; a closed invoice freezes its terms and re-exports identical."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from server.billing.invoice_render import render_csv, render_json, render_pdf
from server.billing.ledger import LedgerChain
from server.billing.service import close_month
from server.budget import month_key
from server.clock import now_ms
from server.gateway import Gateway
from server.operations import create_key, create_project, set_billing_details
from server.settings import load_settings
from server.store.sqlite import billing as billing_sql
from server.store.sqlite import catalog
from server.store.sqlite.db import connect
from server.store.sqlite.store import prepare
from tests.unit.test_closed_month_invoices import _october_usage

TERMS = {"currency": "USD", "issuer": {}, "bill_to": {}, "tax": None, "payment_terms_days": 30, "payment_note": ""}


def _database_with_projects(path: Path, count: int) -> list[str]:
    prepare(path, LedgerChain(b"k" * 32))
    conn = connect(path)
    ids = [f"prj_{i:04d}" for i in range(count)]
    conn.execute("BEGIN IMMEDIATE")
    for i, project_id in enumerate(ids):
        row = {"id": project_id, "name": f"p{i}", "plan": None, "billing": "postpaid", "created_ms": i}
        catalog.insert_project(row)(conn)
    conn.execute("COMMIT")
    conn.close()
    return ids


def _close_all(path: Path, project_ids: list[str], month: str, start: threading.Barrier, out: list[str]) -> None:
    """One writer (its own connection, as a second process would have), numbering in BEGIN IMMEDIATE."""
    conn = connect(path)
    start.wait()
    for project_id in project_ids:
        conn.execute("BEGIN IMMEDIATE")
        row = billing_sql.ensure_invoice(project_id, month, 1000, 0, "INV-", TERMS, now_ms())(conn)
        conn.execute("COMMIT")
        out.append(row["number"])
    conn.close()


def test_two_concurrent_writers_closing_months_get_distinct_gapless_numbers(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    ids = _database_with_projects(path, 40)
    start = threading.Barrier(2)
    first: list[str] = []
    second: list[str] = []
    threads = [
        threading.Thread(target=_close_all, args=(path, ids[:20], "2026-10", start, first)),
        threading.Thread(target=_close_all, args=(path, ids[20:], "2026-10", start, second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    numbers = first + second
    assert len(numbers) == len(set(numbers)) == 40
    assert sorted(numbers) == [f"INV-{n:06d}" for n in range(1, 41)]  # no gaps, no duplicates
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM counters WHERE name = 'invoice'").fetchone() == (40,)
    finally:
        conn.close()


def test_two_writers_closing_the_same_invoice_share_one_number(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    [project_id] = _database_with_projects(path, 1)
    start = threading.Barrier(2)
    got: list[str] = []
    threads = [threading.Thread(target=_close_all, args=(path, [project_id], "2026-10", start, got)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert got == ["INV-000001", "INV-000001"]


def _gateway_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        '[server]\ndata_dir = "data"\n'
        '[billing]\nissuer_name = "Gateway Ops GmbH"\nissuer_address = "Hauptstrasse 1\\n10115 Berlin"\n'
        "tax_rate = 19\n"
        '[[providers]]\nname = "mock"\nkind = "mock"\n'
        '[[models]]\nname = "m"\ntargets = ["mock:m"]\nprice = { input = 1, output = 2 }\n'
    )
    return config


def test_drafts_consume_no_numbers_and_a_closed_invoice_freezes_its_terms(tmp_path: Path) -> None:
    settings = load_settings(_gateway_config(tmp_path))

    async def scenario() -> None:
        gw = await Gateway.start(settings)
        try:
            octo = await create_project(gw, "octo")
            key, _ = await create_key(gw, "octo")
            await set_billing_details(gw, "octo", {"name": "Octo Ltd", "tax_id": "GB1", "email": "ap@octo.test"})
            await _october_usage(gw, octo.id, key.id, 3)
            await gw.store.append_ledger(octo.id, "adjustment", "now-1", 5, "this month", now_ms())
            running = month_key(now_ms(), "UTC")
            current = await close_month(gw, running, push_stripe=False)
            again = await close_month(gw, running, push_stripe=False)
            assert [d["number"] for d in current + again] == [None, None]
            assert current[0]["status"] == "draft" and current[0]["issued_on"] is None and current[0]["as_of"]
            # gather: two concurrent closes of the same month get the same number, numbered once
            [first], [second] = await asyncio.gather(
                close_month(gw, "2026-10", push_stripe=False), close_month(gw, "2026-10", push_stripe=False)
            )
            assert first["number"] == second["number"] == "INV-000001"  # the drafts consumed nothing
            assert first["taxes"] == [{"name": "Tax", "rate": "19", "amount_micro": 1710}]  # 19 % of 9,000
            assert first["total_micro"] == 10_710 and first["subtotal_micro"] == 9_000
            assert first["issuer"]["name"] == "Gateway Ops GmbH" and first["bill_to"]["name"] == "Octo Ltd"
            files = [render(first) for render in (render_csv, render_json, render_pdf)]
            # the configuration and the project's details change afterwards...
            gw.settings.billing.issuer_name = "Someone Else AG"
            gw.settings.billing.payment_terms_days = 7
            await set_billing_details(gw, "octo", {"name": "Renamed Ltd", "tax_rate": "0"})
            [later] = await close_month(gw, "2026-10", push_stripe=False)
            # ...and the closed invoice still says what it said, byte for byte
            assert [render(later) for render in (render_csv, render_json, render_pdf)] == files
            # while a draft follows the current configuration
            [draft] = await close_month(gw, running, push_stripe=False)
            assert draft["issuer"]["name"] == "Someone Else AG" and draft["taxes"][0]["rate"] == "0"
        finally:
            await gw.close()

    asyncio.run(scenario())
