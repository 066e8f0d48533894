"""Stripe top-ups credited exactly once, refunds, invoices: a real gateway, the real stripe library
against a local Stripe stand-in, and webhook payloads signed with Stripe's scheme."""

from __future__ import annotations

import concurrent.futures
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pypdf
import pytest

from tests.support.gateway import MOCK_CONFIG, GatewayProcess
from tests.upstreams.stripe_upstream import (
    StripeProcess,
    async_payment_succeeded_event,
    charge_refunded_event,
    checkout_completed_event,
    deliver_event,
    start_stripe_process,
)

SECRET = "whsec_test_secret"


@pytest.fixture(scope="module")
def stripe_up() -> Iterator[StripeProcess]:
    up = start_stripe_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(stripe_up: StripeProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = MOCK_CONFIG + f'\n[stripe]\napi_base = "{stripe_up.root_url}"\n'
    env = {"STRIPE_SECRET_KEY": "sk_test_gateway", "STRIPE_WEBHOOK_SECRET": SECRET}
    process = GatewayProcess(tmp_path_factory.mktemp("billing"), config, env).start()
    yield process
    process.stop()


def webhook(gw: GatewayProcess) -> str:
    return f"{gw.url}/stripe/webhook"


def balance(gw: GatewayProcess, project: str) -> int:
    return int(gw.cli_json("wallet", "balance", "--project", project)["balance_micro"])


def order_topup(gw: GatewayProcess, stripe_up: StripeProcess, project: str, amount: str) -> dict[str, Any]:
    if project not in {p["name"] for p in gw.cli_json("projects", "list")}:
        gw.cli_json("projects", "create", project)
    order = gw.cli_json("wallet", "topup", "--project", project, "--amount", amount)
    return {"order": order, "session": stripe_up.complete_session(order["session_id"])}


def test_topup_prints_a_checkout_url_and_credits_once_under_replays(
    gw: GatewayProcess, stripe_up: StripeProcess
) -> None:
    gw.cli_json("projects", "create", "acme")
    text = gw.cli("wallet", "topup", "--project", "acme", "--amount", "50").stdout
    assert "https://checkout.stripe.test/" in text
    sent = [r for r in stripe_up.received() if r["path"] == "/v1/checkout/sessions"][-1]
    assert sent["params"]["mode"] == "payment"
    assert sent["params"]["metadata"]["project_id"].startswith("prj_")
    assert sent["params"]["line_items"][0]["price_data"]["unit_amount"] == "5000"
    assert sent["idempotency_key"]

    placed = order_topup(gw, stripe_up, "acme", "50")
    before = balance(gw, "acme")
    event = checkout_completed_event(placed["session"], event_id="evt_topup_1")
    for _ in range(3):  # Stripe redelivers the same event
        assert deliver_event(webhook(gw), event, SECRET).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # and three concurrent deliveries
        events = [checkout_completed_event(placed["session"], event_id=f"evt_topup_c{i}") for i in range(3)]
        statuses = list(pool.map(lambda e: deliver_event(webhook(gw), e, SECRET).status_code, events))
    assert statuses == [200, 200, 200]
    assert balance(gw, "acme") - before == 50_000_000
    history = gw.cli_json("wallet", "history", "--project", "acme")
    assert [e["kind"] for e in history].count("topup") == 1
    conn = sqlite3.connect(gw.database)
    try:
        recharged = conn.execute("SELECT COUNT(*) FROM outbox WHERE event_type = 'wallet.recharged'").fetchone()[0]
    finally:
        conn.close()
    assert recharged == 1
    assert gw.cli_json("ledger", "verify")["ok"] is True


def test_bad_signature_and_stale_timestamp_are_refused_and_change_nothing(
    gw: GatewayProcess, stripe_up: StripeProcess
) -> None:
    placed = order_topup(gw, stripe_up, "guarded", "20")
    event = checkout_completed_event(placed["session"], event_id="evt_guarded")
    forged = deliver_event(webhook(gw), event, "whsec_wrong")
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_signature"
    stale = deliver_event(webhook(gw), event, SECRET, timestamp=int(time.time()) - 400)
    assert stale.status_code == 400
    assert balance(gw, "guarded") == 0
    assert deliver_event(webhook(gw), event, SECRET).status_code == 200  # the same event, properly signed
    assert balance(gw, "guarded") == 20_000_000


def test_amount_mismatch_and_unpaid_sessions_do_not_credit(gw: GatewayProcess, stripe_up: StripeProcess) -> None:
    placed = order_topup(gw, stripe_up, "careful", "10")
    tampered = checkout_completed_event(placed["session"], event_id="evt_cheap", amount_total=100)
    assert deliver_event(webhook(gw), tampered, SECRET).json()["outcome"] == "amount_mismatch"
    unpaid = checkout_completed_event(placed["session"], event_id="evt_unpaid", payment_status="unpaid")
    assert deliver_event(webhook(gw), unpaid, SECRET).json()["outcome"] == "not_paid"
    assert balance(gw, "careful") == 0
    cleared = async_payment_succeeded_event(placed["session"], event_id="evt_cleared")
    assert deliver_event(webhook(gw), cleared, SECRET).json()["outcome"] == "credited"
    assert balance(gw, "careful") == 10_000_000


def test_refunds_reduce_the_balance_once_per_amount(gw: GatewayProcess, stripe_up: StripeProcess) -> None:
    placed = order_topup(gw, stripe_up, "refunded", "50")
    deliver_event(webhook(gw), checkout_completed_event(placed["session"], event_id="evt_r_paid"), SECRET)
    intent = placed["session"]["payment_intent"]
    partial = charge_refunded_event(intent, event_id="evt_r1", amount=5000, amount_refunded=2000)
    assert deliver_event(webhook(gw), partial, SECRET).json()["outcome"] == "refunded"
    deliver_event(webhook(gw), partial, SECRET)
    assert balance(gw, "refunded") == 30_000_000
    full = charge_refunded_event(intent, event_id="evt_r2", amount=5000, previously_refunded=2000)
    deliver_event(webhook(gw), full, SECRET)
    assert balance(gw, "refunded") == 0
    assert gw.cli_json("ledger", "verify")["ok"] is True


def test_unknown_events_are_acknowledged_and_ignored(gw: GatewayProcess) -> None:
    event = {"id": "evt_other", "object": "event", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    response = deliver_event(webhook(gw), event, SECRET)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"


def test_prepaid_wallet_topped_up_by_stripe_pays_for_requests(gw: GatewayProcess, stripe_up: StripeProcess) -> None:
    placed = order_topup(gw, stripe_up, "payg", "1")
    gw.cli_json("projects", "set-billing", "payg", "prepaid")
    key = gw.cli_json("keys", "create", "--project", "payg")["key"]
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "insufficient_credits"
    deliver_event(webhook(gw), checkout_completed_event(placed["session"], event_id="evt_payg"), SECRET)
    reply = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=50
    )
    cost = round((reply.usage.model_extra or {})["cost"] * 1_000_000)  # type: ignore[union-attr]
    assert balance(gw, "payg") == 1_000_000 - cost


def test_invoice_export_totals_match_the_ledger_and_reexport_is_identical(gw: GatewayProcess, tmp_path: Path) -> None:
    key = gw.new_key("invoiced")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    for text in ("one", "two words", "three little words"):
        client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": text}])
    client.embeddings.create(model="mock-embed", input=["a", "b"])
    month = time.strftime("%Y-%m", time.gmtime())  # still running: drafts, which never take a number
    first = gw.cli_json("invoices", "export", "--month", month, "--out", str(tmp_path / "a"), "--project", "invoiced")
    again = gw.cli_json("invoices", "export", "--month", month, "--out", str(tmp_path / "b"), "--project", "invoiced")
    [invoice] = first["invoices"]
    assert invoice["number"] is None and again["invoices"][0]["number"] is None and invoice["status"] == "draft"
    for suffix in ("csv", "json", "pdf"):
        assert Path(invoice["files"][suffix]).read_bytes() == Path(again["invoices"][0]["files"][suffix]).read_bytes()
    conn = sqlite3.connect(gw.database)
    try:
        debits = conn.execute(
            "SELECT -SUM(l.amount_micro) FROM ledger l JOIN projects p ON p.id = l.project_id"
            " WHERE p.name = 'invoiced' AND l.kind = 'usage'"
        ).fetchone()[0]
        stored = conn.execute("SELECT COUNT(*) FROM invoices").fetchone()[0]
    finally:
        conn.close()
    document = json.loads(Path(invoice["files"]["json"]).read_text())
    assert invoice["total_micro"] == debits == document["total_micro"] > 0
    assert sum(line["amount_micro"] for line in document["lines"]) == debits
    assert {line["model"] for line in document["lines"]} == {"mock-chat", "mock-embed"}
    pdf = pypdf.PdfReader(io.BytesIO(Path(invoice["files"]["pdf"]).read_bytes()))
    text = pdf.pages[0].extract_text()
    assert "DRAFT" in text and invoice["total"] in text
    everyone = gw.cli_json("invoices", "export", "--month", month, "--out", str(tmp_path / "c"))["invoices"]
    assert len(everyone) > 1 and {i["number"] for i in everyone} == {None}
    assert stored == 0  # drafts are not stored and consume no invoice number


def test_invoice_export_rejects_a_bad_month(gw: GatewayProcess, tmp_path: Path) -> None:
    result = gw.cli("invoices", "export", "--month", "2026-13", "--out", str(tmp_path), check=False)
    assert result.returncode == 1 and "invalid_month" in result.stderr
