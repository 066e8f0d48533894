"""The Stripe stand-in must be driven by the real ``stripe`` library, and its signed events must pass
``stripe.Webhook.construct_event``; otherwise tests of the gateway's Stripe code prove nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from stripe import RequestOptions
from stripe.params import (
    CustomerCreateParams,
    InvoiceCreateParams,
    InvoiceFinalizeInvoiceParams,
    InvoiceItemCreateParams,
)
from stripe.params.checkout import SessionCreateParams

from tests.upstreams.stripe_upstream import (
    API_VERSION,
    CHECKOUT_SESSION_PARAMS,
    CUSTOMER_PARAMS,
    FINALIZE_PARAMS,
    INVOICE_ITEM_PARAMS,
    INVOICE_PARAMS,
    StripeProcess,
    async_payment_succeeded_event,
    charge_refunded_event,
    checkout_completed_event,
    decode_form,
    derived_payment_intent,
    encode_event,
    invoice_paid_event,
    sign_payload,
    start_stripe_process,
)

SECRET = "whsec_test_standin"
CHECKOUT_PARAMS: dict[str, Any] = {
    "mode": "payment",
    "line_items": [
        {
            "price_data": {"currency": "usd", "unit_amount": 2500, "product_data": {"name": "Gateway credits"}},
            "quantity": 2,
        }
    ],
    "metadata": {"project_id": "prj_123", "micro": "50000000"},
    "success_url": "https://gw.example/topup/ok",
    "cancel_url": "https://gw.example/topup/cancel",
    "client_reference_id": "prj_123",
}


@pytest.fixture(scope="module")
def up() -> Iterator[StripeProcess]:
    proc = start_stripe_process()
    yield proc
    proc.stop()
    assert proc.proc.poll() is not None


@pytest.fixture()
def client(up: StripeProcess) -> stripe.StripeClient:
    up.clear()
    return stripe.StripeClient("sk_test_123", base_addresses={"api": up.root_url}, max_network_retries=0)


def test_checkout_session_round_trip_with_the_real_library(client: stripe.StripeClient, up: StripeProcess) -> None:
    session = client.v1.checkout.sessions.create(params=CHECKOUT_PARAMS)
    assert isinstance(session, stripe.checkout.Session)
    assert session.object == "checkout.session" and session.id.startswith("cs_test_")
    assert session.url == f"https://checkout.stripe.test/c/pay/{session.id}"
    assert (session.amount_total, session.currency, session.mode) == (5000, "usd", "payment")
    assert (session.payment_status, session.status, session.payment_intent) == ("unpaid", "open", None)
    assert session.metadata.to_dict() == {"project_id": "prj_123", "micro": "50000000"}
    assert session.client_reference_id == "prj_123" and session.customer is None

    again = client.v1.checkout.sessions.retrieve(session.id)
    assert again.id == session.id and again.amount_total == 5000

    create, retrieve = up.received()
    assert create["method"] == "POST" and create["path"] == "/v1/checkout/sessions"
    assert create["headers"]["authorization"] == "Bearer sk_test_123"
    assert create["idempotency_key"] and create["headers"]["idempotency-key"] == create["idempotency_key"]
    assert create["form"]["line_items[0][price_data][unit_amount]"] == "2500"
    assert create["form"]["line_items[0][price_data][product_data][name]"] == "Gateway credits"
    assert create["form"]["metadata[project_id]"] == "prj_123"
    assert create["params"]["line_items"][0]["quantity"] == "2"
    assert retrieve["method"] == "GET" and retrieve["path"] == f"/v1/checkout/sessions/{session.id}"
    assert retrieve["idempotency_key"] is None


def test_checkout_session_for_an_existing_customer(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "ops@acme.test", "metadata": {"project_id": "prj_1"}})
    assert customer.id.startswith("cus_") and customer.object == "customer"
    session = client.v1.checkout.sessions.create(params={**CHECKOUT_PARAMS, "customer": customer.id})
    assert session.customer == customer.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.create(params={**CHECKOUT_PARAMS, "customer": "cus_missing"})
    assert err.value.http_status == 404 and err.value.code == "resource_missing" and err.value.param == "customer"


def test_invoice_with_an_item_is_finalized(client: stripe.StripeClient, up: StripeProcess) -> None:
    customer = client.v1.customers.create(params={"name": "acme", "email": "billing@acme.test"})
    invoice = client.v1.invoices.create(
        params={
            "customer": customer.id,
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "metadata": {"invoice_number": "INV-000001", "month": "2026-10"},
            "auto_advance": False,
            "pending_invoice_items_behavior": "exclude",
        }
    )
    assert invoice.id.startswith("in_") and invoice.object == "invoice" and invoice.status == "draft"
    assert invoice.number is None and invoice.due_date is not None and invoice.auto_advance is False
    item = client.v1.invoice_items.create(
        params={
            "customer": customer.id,
            "amount": 1235,
            "currency": "usd",
            "description": "gpt-4o-mini: 12 requests",
            "invoice": invoice.id,
        }
    )
    assert item.id.startswith("ii_") and item.object == "invoiceitem" and item.invoice == invoice.id

    final = client.v1.invoices.finalize_invoice(invoice.id)
    assert final.status == "open" and final.number and final.number.endswith("-0001")
    assert (final.amount_due, final.amount_remaining, final.total, final.currency) == (1235, 1235, 1235, "usd")
    assert final.hosted_invoice_url and final.status_transitions.finalized_at
    assert [line.description for line in final.lines.data] == ["gpt-4o-mini: 12 requests"]
    assert client.v1.invoices.retrieve(invoice.id).status == "open"

    with pytest.raises(stripe.InvalidRequestError, match="re-finalize"):
        client.v1.invoices.finalize_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        client.v1.invoice_items.create(
            params={"customer": customer.id, "amount": 1, "currency": "usd", "invoice": invoice.id}
        )

    paid = up.pay_invoice(invoice.id)
    assert paid["status"] == "paid" and paid["amount_paid"] == 1235
    calls = [(r["method"], r["path"]) for r in up.received()]
    assert calls[:4] == [
        ("POST", "/v1/customers"),
        ("POST", "/v1/invoices"),
        ("POST", "/v1/invoiceitems"),
        ("POST", f"/v1/invoices/{invoice.id}/finalize"),
    ]
    assert up.received()[1]["form"]["metadata[invoice_number]"] == "INV-000001"
    assert up.received()[1]["form"]["auto_advance"] == "false"


def test_pending_items_are_pulled_in_and_zero_invoices_finalize_paid(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 700, "currency": "usd"})
    invoice = client.v1.invoices.create(params={"customer": customer.id, "pending_invoice_items_behavior": "include"})
    assert invoice.amount_due == 700 and invoice.lines.total_count == 1
    empty = client.v1.invoices.create(params={"customer": customer.id})
    assert client.v1.invoices.finalize_invoice(empty.id).status == "paid"


def test_the_global_api_base_also_points_the_library_here(up: StripeProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_base", up.root_url)
    monkeypatch.setattr(stripe, "api_key", "sk_test_global")
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    session = stripe.checkout.Session.create(**CHECKOUT_PARAMS)
    assert session.id.startswith("cs_test_")
    assert stripe.checkout.Session.retrieve(session.id).amount_total == 5000


def test_keys_other_than_test_secret_keys_get_stripes_401(up: StripeProcess) -> None:
    for key in ("sk_live_abcdefghijkl1234", "rk_test_abcdefghijkl1234"):
        bad = stripe.StripeClient(key, base_addresses={"api": up.root_url}, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError, match="Invalid API Key"):
            bad.v1.checkout.sessions.create(params=CHECKOUT_PARAMS)
    resp = httpx.post(f"{up.root_url}/v1/checkout/sessions", data={"mode": "payment"})
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and "did not provide an API key" in error["message"]
    assert resp.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    "change, param, code",
    [
        (
            {"line_items": [{"price_data": CHECKOUT_PARAMS["line_items"][0]["price_data"]}]},
            "line_items[0][quantity]",
            None,
        ),
        ({"mode": None}, "mode", "parameter_missing"),
        ({"typo_url": "https://x"}, "typo_url", "parameter_unknown"),
        ({"metadata": {"k" * 41: "v"}}, f"metadata[{'k' * 41}]", None),
        ({"line_items": [{**CHECKOUT_PARAMS["line_items"][0], "quantity": 0}]}, "line_items[0][quantity]", None),
        (
            {"line_items": [{"price_data": {"currency": "usd", "unit_amount": 10, "product": "p"}, "quantity": 1}]},
            "line_items",
            "amount_too_small",
        ),
    ],
)
def test_checkout_validation_mirrors_stripe(
    client: stripe.StripeClient, change: dict[str, Any], param: str, code: str | None
) -> None:
    params = {k: v for k, v in {**CHECKOUT_PARAMS, **change}.items() if v is not None}
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.create(params=params)
    assert err.value.http_status == 400 and err.value.param == param
    if code:
        assert err.value.code == code


def test_unknown_objects_and_urls_are_404(client: stripe.StripeClient, up: StripeProcess) -> None:
    with pytest.raises(stripe.InvalidRequestError, match=r"No such checkout\.session: 'cs_test_nope'") as err:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert err.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError, match="No such invoice"):
        client.v1.invoices.retrieve("in_nope")
    resp = httpx.get(f"{up.root_url}/v1/balance", headers={"authorization": "Bearer sk_test_1"})
    assert resp.status_code == 404 and "Unrecognized request URL" in resp.json()["error"]["message"]


def test_idempotency_keys_replay_and_refuse_other_parameters(client: stripe.StripeClient, up: StripeProcess) -> None:
    options: RequestOptions = {"idempotency_key": "topup-prj_123-42"}
    first = client.v1.checkout.sessions.create(params=CHECKOUT_PARAMS, options=options)
    second = client.v1.checkout.sessions.create(params=CHECKOUT_PARAMS, options=options)
    assert first.id == second.id
    assert [r["idempotency_key"] for r in up.received()] == ["topup-prj_123-42"] * 2
    other = {**CHECKOUT_PARAMS, "client_reference_id": "prj_other"}
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(params=other, options=options)


def test_behavior_injects_failures_that_clear_after_n_calls(client: stripe.StripeClient, up: StripeProcess) -> None:
    up.set_behavior(status=500, times=1)
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.create(params=CHECKOUT_PARAMS, options={"idempotency_key": "retry-1"})
    session = client.v1.checkout.sessions.create(params=CHECKOUT_PARAMS, options={"idempotency_key": "retry-1"})
    assert session.status == "open"  # a failure before execution stores nothing, so the retry runs


def test_completing_a_session_matches_the_event_helper(client: stripe.StripeClient, up: StripeProcess) -> None:
    session = client.v1.checkout.sessions.create(params=CHECKOUT_PARAMS)
    done = up.complete_session(session.id)
    assert (done["status"], done["payment_status"]) == ("complete", "paid")
    assert done["payment_intent"] == derived_payment_intent(session.id)
    assert client.v1.checkout.sessions.retrieve(session.id).payment_intent == done["payment_intent"]
    event = checkout_completed_event(session.to_dict(), event_id="evt_1")
    assert event["data"]["object"]["payment_intent"] == done["payment_intent"]


# ---------------------------------------------------------------------------------------------
# webhook events and signatures (pure helpers, checked by the real library)


def session_dict() -> dict[str, Any]:
    return {
        "id": "cs_test_a1abc",
        "object": "checkout.session",
        "amount_total": 5000,
        "currency": "usd",
        "customer_email": None,
        "metadata": {"project_id": "prj_123"},
        "mode": "payment",
        "payment_intent": None,
        "payment_status": "unpaid",
        "status": "open",
    }


def verify(body: bytes, header: str) -> stripe.Event:
    return stripe.Webhook.construct_event(body, header, SECRET, tolerance=300)


def test_signed_event_is_accepted_by_construct_event() -> None:
    event = checkout_completed_event(session_dict(), event_id="evt_1Abc")
    body = encode_event(event)
    parsed = verify(body, sign_payload(body, SECRET))
    assert parsed.id == "evt_1Abc" and parsed.type == "checkout.session.completed"
    assert parsed.api_version == API_VERSION and parsed.object == "event"
    obj = parsed.data.object
    assert (obj.status, obj.payment_status, obj.amount_total) == ("complete", "paid", 5000)
    assert obj.payment_intent.startswith("pi_") and obj.metadata["project_id"] == "prj_123"


def test_tampered_body_stale_timestamp_and_wrong_secret_are_rejected() -> None:
    body = encode_event(checkout_completed_event(session_dict(), event_id="evt_2"))
    header = sign_payload(body, SECRET)
    tampered = body.replace(b'"amount_total": 5000', b'"amount_total": 9000')
    assert tampered != body
    with pytest.raises(stripe.SignatureVerificationError):
        verify(tampered, header)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        verify(body, sign_payload(body, SECRET, timestamp=int(time.time()) - 301))
    with pytest.raises(stripe.SignatureVerificationError):
        verify(body, sign_payload(body, "whsec_other"))
    assert verify(body, sign_payload(body, SECRET, timestamp=int(time.time()) - 290)).id == "evt_2"


def test_sign_payload_uses_stripes_scheme() -> None:
    header = sign_payload(b'{"id": "evt_x"}', "whsec_k", timestamp=1_700_000_000)
    ts, v1 = header.split(",")
    assert ts == "t=1700000000" and len(v1) == 3 + 64
    expected = stripe.WebhookSignature._compute_signature('1700000000.{"id": "evt_x"}', "whsec_k")
    assert v1 == f"v1={expected}"


def test_other_event_helpers_parse_with_the_library() -> None:
    async_event = async_payment_succeeded_event(session_dict(), event_id="evt_3", amount_total=4999)
    refund = charge_refunded_event("pi_abc", event_id="evt_4", amount=5000, amount_refunded=2000, created=1_800_000_000)
    unpaid = checkout_completed_event(session_dict(), event_id="evt_5", payment_status="unpaid")
    invoice = {
        "id": "in_1",
        "object": "invoice",
        "amount_due": 1235,
        "amount_paid": 0,
        "attempt_count": 0,
        "status": "open",
        "status_transitions": {"finalized_at": 1, "paid_at": None},
    }
    paid = invoice_paid_event(invoice, event_id="evt_6", created=1_800_000_100)
    for event in (async_event, refund, unpaid, paid):
        body = json.dumps(event).encode()
        assert verify(body, sign_payload(body, SECRET)).id == event["id"]
    assert async_event["type"] == "checkout.session.async_payment_succeeded"
    assert async_event["data"]["object"]["payment_status"] == "paid"
    assert async_event["data"]["object"]["amount_total"] == 4999
    charge = refund["data"]["object"]
    assert refund["type"] == "charge.refunded" and charge["object"] == "charge"
    assert (charge["payment_intent"], charge["amount_refunded"], charge["refunded"]) == ("pi_abc", 2000, False)
    assert refund["created"] == 1_800_000_000 and refund["data"]["previous_attributes"]["amount_refunded"] == 0
    assert unpaid["data"]["object"]["payment_status"] == "unpaid"
    assert unpaid["data"]["object"]["status"] == "complete"
    assert paid["type"] == "invoice.paid" and paid["data"]["object"]["status"] == "paid"
    assert paid["data"]["object"]["amount_paid"] == 1235 and paid["data"]["object"]["status_transitions"]["paid_at"]
    assert invoice["status"] == "open"  # helpers never mutate their input


def test_decode_form_handles_stripes_bracket_encoding() -> None:
    pairs = [
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[1][quantity]", "3"),
        ("metadata[0]", "digit keys stay a dict"),
        ("expand[0]", "line_items"),
        ("expand[1]", "customer"),
        ("mode", "payment"),
    ]
    assert decode_form(pairs) == {
        "line_items": [{"price_data": {"currency": "usd"}}, {"quantity": "3"}],
        "metadata": {"0": "digit keys stay a dict"},
        "expand": ["line_items", "customer"],
        "mode": "payment",
    }


@pytest.mark.parametrize(
    "allowed, typed",
    [
        (CHECKOUT_SESSION_PARAMS, SessionCreateParams),
        (CUSTOMER_PARAMS, CustomerCreateParams),
        (INVOICE_ITEM_PARAMS, InvoiceItemCreateParams),
        (INVOICE_PARAMS, InvoiceCreateParams),
        (FINALIZE_PARAMS, InvoiceFinalizeInvoiceParams),
    ],
)
def test_accepted_parameters_match_the_library(allowed: frozenset[str], typed: type) -> None:
    """When the library learns a parameter, the stand-in must learn it too (or refuse it knowingly)."""
    wire = set(typed.__annotations__) - set(RequestOptions.__annotations__)
    assert allowed == wire


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # inside stripe's HTTPXClient
def test_the_librarys_async_client_works_too(up: StripeProcess) -> None:
    """The server is async; stripe's async methods go through its httpx client, not urllib/requests."""

    async def run() -> tuple[str, str]:
        http = stripe.HTTPXClient()
        client = stripe.StripeClient(
            "sk_test_123", base_addresses={"api": up.root_url}, http_client=http, max_network_retries=0
        )
        session = await client.v1.checkout.sessions.create_async(params=CHECKOUT_PARAMS)
        again = await client.v1.checkout.sessions.retrieve_async(session.id)
        await http.close_async()
        return session.id, again.status

    session_id, status = asyncio.run(run())
    assert session_id.startswith("cs_test_") and status == "open"
