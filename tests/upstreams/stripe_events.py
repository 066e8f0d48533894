"""Webhook events for the Stripe stand-in: pure helpers that build, sign and deliver Stripe ``Event`` objects.

They need no running stand-in, so the gateway's webhook can be tested without Stripe; ``stripe_upstream``
re-exports them all.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

API_VERSION = "2026-10-28.endive"  # what stripe-python 16.1 pins; events claim the same version


def derived_payment_intent(session_id: str) -> str:
    """The PaymentIntent id a completed session gets, fixed per session so tests can predict it."""
    return "pi_" + hashlib.sha256(session_id.encode()).hexdigest()[:24]


def paid_fields(invoice: dict[str, Any], at: int) -> dict[str, Any]:
    return {
        "status": "paid",
        "amount_paid": invoice["amount_due"],
        "amount_remaining": 0,
        "attempted": True,
        "attempt_count": max(invoice["attempt_count"], 1),
        "status_transitions": {**invoice["status_transitions"], "paid_at": at},
    }


def make_event(
    type_: str,
    obj: dict[str, Any],
    *,
    event_id: str,
    created: int | None = None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Stripe Event object (snapshot payload) wrapping a copy of ``obj``."""
    data: dict[str, Any] = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def _completed_session(
    session: dict[str, Any], payment_status: str, amount_total: int | None, payment_intent: str | None
) -> dict[str, Any]:
    done = copy.deepcopy(session)
    done.update(
        status="complete",
        payment_status=payment_status,
        payment_intent=payment_intent or derived_payment_intent(session["id"]),
    )
    if done.get("customer_details") is None:
        done["customer_details"] = {
            "email": done.get("customer_email"),
            "name": None,
            "phone": None,
            "tax_exempt": "none",
        }
    if amount_total is not None:
        done["amount_total"] = amount_total
    return done


def checkout_completed_event(
    session: dict[str, Any],
    *,
    event_id: str,
    payment_status: str = "paid",
    amount_total: int | None = None,
    payment_intent: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """``checkout.session.completed``; ``payment_status="unpaid"`` models a delayed method (bank debit)."""
    done = _completed_session(session, payment_status, amount_total, payment_intent)
    return make_event("checkout.session.completed", done, event_id=event_id, created=created)


def async_payment_succeeded_event(
    session: dict[str, Any],
    *,
    event_id: str,
    amount_total: int | None = None,
    payment_intent: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """``checkout.session.async_payment_succeeded``: the delayed payment of a completed session cleared."""
    done = _completed_session(session, "paid", amount_total, payment_intent)
    return make_event("checkout.session.async_payment_succeeded", done, event_id=event_id, created=created)


def charge_refunded_event(
    payment_intent: str,
    *,
    event_id: str,
    amount: int,
    amount_refunded: int | None = None,
    previously_refunded: int = 0,
    currency: str = "usd",
    charge_id: str | None = None,
    metadata: dict[str, str] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """``charge.refunded`` for the charge of ``payment_intent``; a full refund unless ``amount_refunded`` says less.
    ``amount_refunded`` is cumulative, as on Stripe's Charge object."""
    refunded = amount if amount_refunded is None else amount_refunded
    at = int(time.time()) if created is None else created
    charge = {
        "id": charge_id or "ch_" + hashlib.sha256(payment_intent.encode()).hexdigest()[:24],
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "balance_transaction": "txn_" + hashlib.sha256(f"{payment_intent}:txn".encode()).hexdigest()[:24],
        "captured": True,
        "created": at,
        "currency": currency,
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "paid": True,
        "payment_intent": payment_intent,
        "payment_method": "pm_" + hashlib.sha256(f"{payment_intent}:pm".encode()).hexdigest()[:24],
        "receipt_url": None,
        "refunded": refunded >= amount,
        "status": "succeeded",
    }
    previous = {"amount_refunded": previously_refunded, "refunded": False}
    return make_event("charge.refunded", charge, event_id=event_id, created=at, previous_attributes=previous)


def invoice_paid_event(invoice: dict[str, Any], *, event_id: str, created: int | None = None) -> dict[str, Any]:
    """``invoice.paid`` for ``invoice`` (as returned by the stand-in), marked paid in full."""
    at = int(time.time()) if created is None else created
    paid = {**copy.deepcopy(invoice), **paid_fields(invoice, at)}
    return make_event("invoice.paid", paid, event_id=event_id, created=at)


def encode_event(event: dict[str, Any]) -> bytes:
    """The body Stripe posts: pretty-printed JSON."""
    return json.dumps(event, indent=2).encode()


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header: ``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>" keyed by the secret>``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def deliver_event(
    url: str, event: dict[str, Any], secret: str, *, timestamp: int | None = None, timeout: float = 10.0
) -> httpx.Response:
    """POST a signed event to a webhook endpoint the way Stripe does (same headers, raw JSON body)."""
    body = encode_event(event)
    headers = {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "stripe-signature": sign_payload(body, secret, timestamp),
    }
    return httpx.post(url, content=body, headers=headers, timeout=timeout)
