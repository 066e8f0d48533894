"""Money operations behind the admin API and the Stripe webhook: top-ups, Stripe events, invoices.

Each database change is one store operation, one transaction (so three concurrent deliveries of an event
are serialized and credit once); the in-memory wallet balance moves only after the commit.
"""

from __future__ import annotations

import logging
from typing import Any

from server.billing import invoices
from server.billing.invoices import is_closed, month_bounds, parse_month
from server.billing.stripe_api import StripeApi
from server.billing.topups import cents_to_micro, refusal, session_facts, whole_cents
from server.clock import now_ms
from server.errors import INVALID_AMOUNT, MONTH_OPEN
from server.gateway import Gateway
from server.keys import new_id
from server.operations import find_project
from server.store.protocol import Store

log = logging.getLogger("gateway.billing")

CREDIT_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


def stripe_api(gw: Gateway) -> StripeApi:
    return StripeApi(gw.settings.stripe, gw.settings.billing.currency)


async def topup(gw: Gateway, ref: str, amount_micro: int) -> dict[str, Any]:
    """Order a top-up and open a Stripe Checkout Session for it; the wallet moves only on the webhook."""
    project = find_project(gw, ref)
    if amount_micro <= 0:
        raise INVALID_AMOUNT(field="amount", detail="the amount must be positive")
    order_id = new_id("ord")
    session_id, url = await stripe_api(gw).checkout(project.id, project.name, amount_micro, order_id)
    order = {
        "id": order_id,
        "project_id": project.id,
        "session_id": session_id,
        "amount_micro": amount_micro,
        "currency": gw.settings.billing.currency.lower(),
        "created_ms": now_ms(),
    }
    await gw.store.create_topup_order(order)
    return {
        "order_id": order_id,
        "project_id": project.id,
        "session_id": session_id,
        "url": url,
        "amount_micro": amount_micro,
    }


async def _apply(
    store: Store, event_id: str, event_type: str, obj: dict[str, Any], when: int
) -> tuple[Any, dict[str, Any] | None]:
    """The store's part of one Stripe event: its outcome and the ledger entry it made, if any."""
    if event_type in CREDIT_EVENTS:
        return await store.credit_topup(event_id, event_type, session_facts(obj), when, refusal)
    if event_type == "charge.refunded":
        return await store.refund(
            event_id,
            event_type,
            str(obj.get("id")),
            obj.get("payment_intent") if isinstance(obj.get("payment_intent"), str) else None,
            cents_to_micro(whole_cents(obj.get("amount_refunded"))),
            when,
        )
    if event_type == "invoice.paid":
        return await store.settle_invoice(event_id, event_type, str(obj.get("id")), when)
    return await store.ignore_stripe_event(event_id, event_type, when)


async def handle_event(gw: Gateway, event: dict[str, Any]) -> str:
    """Apply one verified Stripe event; returns what happened (for the log and the response)."""
    event_id, event_type, when = event["id"], event["type"], now_ms()
    obj = event["data"]["object"]  # verified to be an object
    with gw.budgets.crediting() as credit:  # on Redis: fenced from the reconciliation until Redis has it
        outcome, entry = await _apply(gw.store, event_id, event_type, obj, when)
        if entry is not None:
            credit(entry["project_id"], entry["amount_micro"])
    log.info("stripe event %s (%s): %s", event_id, event_type, outcome)
    return str(outcome)


def resolve_month(gw: Gateway, month: str) -> tuple[str, bool]:
    """('YYYY-MM', whether it has ended) in the billing zone; 'last' is the last month that ended."""
    zone, now = gw.settings.billing.timezone, now_ms()
    month = parse_month(month, zone, now)
    return month, is_closed(month, zone, now)


async def close_month(
    gw: Gateway, month: str, push_stripe: bool, project_ref: str | None = None
) -> list[dict[str, Any]]:
    """Invoice documents for every project with ledger entries in the month: numbered and frozen once
    the month has ended (on the first export after), drafts while it runs."""
    billing = gw.settings.billing
    zone, now = billing.timezone, now_ms()
    month, closed = resolve_month(gw, month)
    start, end = month_bounds(month, zone)
    if push_stripe and not closed:
        raise MONTH_OPEN(month=month)
    project_ids = await gw.store.projects_with_entries(start, end)
    if project_ref:
        wanted = find_project(gw, project_ref).id
        project_ids = [p for p in project_ids if p == wanted]
    documents = []
    for project_id in project_ids:
        project = gw.snapshot.projects_by_id[project_id]
        data = await gw.store.invoice_data(project_id, start, end)
        agreed = invoices.terms(billing, project.public())
        if not closed:
            documents.append(invoices.draft(project.public(), data, agreed, month, invoices.local_date(now, zone)))
            continue
        subtotal = data["debits_micro"]
        tax = invoices.tax_micro(subtotal, agreed["tax"]["rate"]) if agreed["tax"] else 0
        row = await gw.store.number_invoice(project_id, month, subtotal, tax, billing.invoice_prefix, agreed, now)
        doc = invoices.closed(row, project.public(), data, billing.currency, zone)
        if push_stripe:
            doc["stripe_invoice_id"] = await _push(gw, row, project.billing, project.stripe_customer_id, doc)
        documents.append(doc)
    return documents


async def _push(
    gw: Gateway, row: dict[str, Any], billing: str, customer: str | None, doc: dict[str, Any]
) -> str | None:
    """Mirror a postpaid project's invoice in Stripe once (needs the project's Stripe customer id)."""
    if row.get("stripe_invoice_id"):
        return str(row["stripe_invoice_id"])
    if billing != "postpaid" or not customer or not doc["lines"]:
        return None
    stripe_id = await stripe_api(gw).push_invoice(customer, doc)
    await gw.store.set_stripe_invoice(row["id"], stripe_id)
    return stripe_id
