"""A closed month, in-process on a real database file: invoices are numbered once and frozen, pushed to
the Stripe stand-in with the real stripe library, and settled by a signed invoice.paid event."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from server.billing.service import close_month, handle_event
from server.gateway import Gateway
from server.operations import create_key, create_project, set_project
from server.settings import load_settings
from server.store.protocol import Closing, HoldRecord, Intent
from server.types import Call, Caller, Charge, Outcome, Usage
from tests.upstreams.stripe_upstream import StripeProcess, invoice_paid_event, start_stripe_process

OCTOBER = 1_792_000_000_000  # 2026-10-15 in UTC


@pytest.fixture()
def stripe_up() -> Iterator[StripeProcess]:
    up = start_stripe_process()
    yield up
    up.stop()


def _config(tmp_path: Path, stripe_url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\ndata_dir = "data"\n[stripe]\napi_base = "{stripe_url}"\n'
        '[[providers]]\nname = "mock"\nkind = "mock"\n'
        '[[models]]\nname = "m"\ntargets = ["mock:m"]\nprice = { input = 1, output = 2 }\n'
    )
    return config


async def _october_usage(gw: Gateway, project_id: str, key_id: str, n: int) -> None:
    caller = Caller(project_id, key_id, "127.0.0.1")
    for i in range(n):
        call = Call(request_id=f"req-oct-{i}", endpoint="chat", model="m", body={}, started_ms=OCTOBER + i)
        card = {"input": 1_000_000, "output": 2_000_000, "cached_input": 1_000_000}
        gw.store.record_intent(Intent(caller, call, HoldRecord(call.request_id, project_id, key_id, 0, False, card)))
        outcome = Outcome(
            status="ok",
            http_status=200,
            usage=Usage(input_tokens=1000 * (i + 1), output_tokens=500),
            charge=Charge(micro=1000 * (i + 1) + 1000, card=card),
            ended_ms=OCTOBER + i,
        )
        await gw.store.record_closing(Closing(caller, call, outcome, call.request_id, "settled"))


def test_closed_month_is_numbered_once_pushed_to_stripe_and_settled(
    tmp_path: Path, stripe_up: StripeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_unit")
    settings = load_settings(_config(tmp_path, stripe_up.root_url))

    async def scenario() -> None:
        gw = await Gateway.start(settings)
        try:
            project = await create_project(gw, "octo")
            key, _ = await create_key(gw, "octo")
            client = stripe.StripeClient("sk_test_unit", base_addresses={"api": stripe_up.root_url})
            customer = client.v1.customers.create(params={"email": "billing@octo.test", "name": "Octo"})
            await set_project(gw, "octo", stripe_customer_id=customer.id)
            await _october_usage(gw, project.id, key.id, 3)
            [first] = await close_month(gw, "2026-10", push_stripe=True)
            [again] = await close_month(gw, "2026-10", push_stripe=True)
            assert first["number"] == again["number"] == "INV-000001"
            assert first["total_micro"] == 2000 + 3000 + 4000
            # issued the day it was numbered (the first export after the month ended), never later
            today = time.strftime("%Y-%m-%d", time.gmtime())
            assert "2026-11-01" <= first["issued_on"] == again["issued_on"] <= today and first["status"] == "open"
            assert first["due_on"] > first["issued_on"]  # 30 days' terms by default
            stripe_id = first["stripe_invoice_id"]
            assert stripe_id and again["stripe_invoice_id"] == stripe_id  # pushed once
            items = [r for r in stripe_up.received() if r["path"] == "/v1/invoiceitems"]
            assert [int(r["params"]["amount"]) for r in items] == [1]  # one line (model m): 9,000 micro -> 1 cent
            invoice = stripe_up.pay_invoice(stripe_id)
            outcome = await handle_event(gw, invoice_paid_event(invoice, event_id="evt_inv_paid"))
            assert outcome == "paid"
            assert await handle_event(gw, invoice_paid_event(invoice, event_id="evt_inv_paid")) == "duplicate_event"
            [paid] = await close_month(gw, "2026-10", push_stripe=False)
            assert paid["status"] == "paid"
        finally:
            await gw.close()

    asyncio.run(scenario())
    conn = sqlite3.connect(settings.database_path)
    try:
        kinds = [row[0] for row in conn.execute("SELECT kind FROM ledger ORDER BY rowid")]
        events = [row[0] for row in conn.execute("SELECT event_type FROM outbox")]
        balance = conn.execute("SELECT balance_micro FROM projects WHERE name = 'octo'").fetchone()[0]
    finally:
        conn.close()
    assert kinds == ["usage", "usage", "usage", "invoice_settlement"]
    assert events.count("invoice.paid") == 1
    assert balance == 0  # 9,000 of usage debits, then the paid invoice settled them
