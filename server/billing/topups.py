"""Rules for crediting Stripe money, as pure functions over what Stripe said and what we ordered.

A wallet is credited exactly once per Checkout Session (and so per PaymentIntent), only when the
session is paid and its amount and currency equal the order the gateway created.
"""

from __future__ import annotations

from typing import Any

# Stripe amounts are in the currency's minor unit (cents for USD); ours are micro-units.
MICRO_PER_CENT = 10_000


def cents_to_micro(cents: int) -> int:
    return cents * MICRO_PER_CENT


def micro_to_cents(micro: int) -> int:
    if micro % MICRO_PER_CENT:
        raise ValueError("Stripe charges whole cents; the amount has sub-cent precision")
    return micro // MICRO_PER_CENT


def whole_cents(value: Any) -> int:
    """A Stripe amount (integer cents); anything else counts as 0, which never matches an order."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**15 else 0


def session_facts(session: dict[str, Any]) -> dict[str, Any]:
    """What matters of a checkout.session object for crediting (wrong types read as nothing)."""
    metadata = session.get("metadata")
    return {
        "session_id": str(session.get("id") or ""),
        "payment_intent": session.get("payment_intent") if isinstance(session.get("payment_intent"), str) else None,
        "payment_status": session.get("payment_status"),
        "amount_micro": cents_to_micro(whole_cents(session.get("amount_total"))),
        "currency": str(session.get("currency") or "").lower(),
        "project_id": metadata.get("project_id") if isinstance(metadata, dict) else None,
    }


def refusal(order: dict[str, Any] | None, facts: dict[str, Any]) -> str | None:
    """Why this session must not credit the wallet (None: credit it)."""
    if order is None:
        return "unknown_order"
    if order["status"] == "credited":
        return "already_credited"
    if facts["payment_status"] != "paid":
        return "not_paid"
    if facts["amount_micro"] != order["amount_micro"] or facts["currency"] != order["currency"]:
        return "amount_mismatch"
    if facts["project_id"] not in (None, order["project_id"]):
        return "project_mismatch"
    return None
