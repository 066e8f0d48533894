"""Customers, invoice items and invoices for the Stripe stand-in: the handlers of their v1 routes.

Each handler takes (params, path id) and returns the object to answer with (status 200); ``stripe_upstream``
routes to them and re-exports them.
"""

from __future__ import annotations

import string
import time
from typing import Any

from tests.upstreams.stripe_core import (
    RETRIEVE_PARAMS,
    STATE,
    ApiError,
    as_bool,
    as_currency,
    as_enum,
    as_int,
    as_metadata,
    check_known,
    missing,
    param_names,
    random_token,
)
from tests.upstreams.stripe_events import paid_fields

# Wire parameters each route accepts (the library's *Params TypedDicts minus its request options);
# anything else is refused as Stripe does, so a typo in the gateway fails here, not in production.
CUSTOMER_PARAMS = param_names(
    "address balance business_name cash_balance description email expand individual_name invoice_prefix "
    "invoice_settings metadata name next_invoice_sequence payment_method phone preferred_locales shipping source "
    "tax tax_exempt tax_id_data test_clock validate"
)
INVOICE_ITEM_PARAMS = param_names(
    "amount currency customer customer_account description discountable discounts expand invoice metadata period "
    "price_data pricing quantity quantity_decimal subscription tax_behavior tax_code tax_rates unit_amount_decimal"
)
INVOICE_PARAMS = param_names(
    "account_tax_ids application_fee_amount auto_advance automatic_tax automatically_finalizes_at collection_method "
    "currency custom_fields customer customer_account days_until_due default_payment_method default_source "
    "default_tax_rates description discounts due_date effective_at expand footer from_invoice issuer metadata "
    "number on_behalf_of payment_settings pending_invoice_items_behavior rendering shipping_cost shipping_details "
    "statement_descriptor subscription transfer_data"
)
FINALIZE_PARAMS = frozenset({"auto_advance", "expand"})
INVOICE_HOST = "https://invoice.stripe.test"


def create_customer(params: dict[str, Any], _: str | None) -> dict[str, Any]:
    check_known(params, CUSTOMER_PARAMS)
    customer_id = f"cus_{random_token(14)}"
    customer = {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": as_int(params["balance"], "balance") if "balance" in params else 0,
        "created": int(time.time()),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": params.get("description"),
        "discount": None,
        "email": params.get("email"),
        "invoice_prefix": params.get("invoice_prefix") or random_token(8, string.ascii_uppercase + string.digits),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": as_metadata(params.get("metadata")),
        "name": params.get("name"),
        "next_invoice_sequence": 1,
        "phone": params.get("phone"),
        "preferred_locales": params.get("preferred_locales") or [],
        "shipping": None,
        "tax_exempt": params.get("tax_exempt", "none"),
        "test_clock": None,
    }
    return STATE.save(customer)


def retrieve_customer(params: dict[str, Any], customer_id: str | None) -> dict[str, Any]:
    check_known(params, RETRIEVE_PARAMS)
    return STATE.get("customer", str(customer_id), "customer")


def _draft_invoice(invoice_id: str, param: str) -> dict[str, Any]:
    invoice = STATE.get("invoice", invoice_id, param)
    if invoice["status"] != "draft":
        raise ApiError(400, f"You can only modify draft invoices; {invoice_id} is {invoice['status']}.", param=param)
    return invoice


def create_invoice_item(params: dict[str, Any], _: str | None) -> dict[str, Any]:
    check_known(params, INVOICE_ITEM_PARAMS)
    if "customer" not in params:
        raise missing("customer")
    customer = STATE.get("customer", params["customer"], "customer")
    quantity = as_int(params["quantity"], "quantity", minimum=0) if "quantity" in params else 1
    if "amount" in params:
        amount, unit = as_int(params["amount"], "amount"), None
        currency_param = "currency"
        currency = params.get("currency")
    elif isinstance(params.get("price_data"), dict):
        data = params["price_data"]
        unit = as_int(data.get("unit_amount"), "price_data[unit_amount]")
        amount, currency_param, currency = unit * quantity, "price_data[currency]", data.get("currency")
    else:
        raise missing("amount")
    if currency is None:
        raise missing(currency_param)
    currency = as_currency(currency, currency_param)
    invoice = _draft_invoice(params["invoice"], "invoice") if "invoice" in params else None
    if invoice is not None and invoice["customer"] != customer["id"]:
        raise ApiError(400, "The invoice belongs to another customer.", param="invoice")
    if invoice is not None and invoice["currency"] != currency:
        raise ApiError(400, f"The invoice currency is {invoice['currency']}, not {currency}.", param="currency")
    now = int(time.time())
    item_id = f"ii_{random_token(24)}"
    item = {
        "id": item_id,
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "date": now,
        "description": params.get("description"),
        "discountable": as_bool(params["discountable"], "discountable") if "discountable" in params else True,
        "discounts": [],
        "invoice": invoice["id"] if invoice else None,
        "livemode": False,
        "metadata": as_metadata(params.get("metadata")),
        "net_amount": amount,
        "parent": None,
        "period": {"end": now, "start": now},
        "pricing": {
            "price_details": None,
            "type": "price_details",
            "unit_amount_decimal": str(unit if unit is not None else amount),
        },
        "proration": False,
        "quantity": quantity,
        "tax_rates": [],
        "test_clock": None,
    }
    STATE.objects[item_id] = item
    if invoice is not None:
        _refresh_invoice(invoice)
    return item


def _line_item(item: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    return {
        "id": f"il_{item['id'][3:]}",
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": item["metadata"],
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {"invoice_item": item["id"], "proration": False, "subscription": None},
            "subscription_item_details": None,
        },
        "period": item["period"],
        "pretax_credit_amounts": [],
        "pricing": item["pricing"],
        "quantity": item["quantity"],
        "subscription": None,
        "taxes": [],
    }


def _refresh_invoice(invoice: dict[str, Any]) -> None:
    """Recompute lines and totals from the invoice items attached to this invoice."""
    items = [o for o in STATE.objects.values() if o["object"] == "invoiceitem" and o["invoice"] == invoice["id"]]
    total = sum(item["amount"] for item in items)
    invoice["lines"] = {
        "object": "list",
        "data": [_line_item(item, invoice["id"]) for item in items],
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/invoices/{invoice['id']}/lines",
    }
    paid = invoice["amount_paid"]
    invoice.update(
        subtotal=total,
        subtotal_excluding_tax=total,
        total=total,
        total_excluding_tax=total,
        amount_due=max(total, 0),
        amount_remaining=max(total, 0) - paid,
    )


def create_invoice(params: dict[str, Any], _: str | None) -> dict[str, Any]:
    check_known(params, INVOICE_PARAMS)
    if "customer" not in params:
        raise missing("customer")
    customer = STATE.get("customer", params["customer"], "customer")
    method = as_enum(
        params.get("collection_method", "charge_automatically"),
        "collection_method",
        ("charge_automatically", "send_invoice"),
    )
    now = int(time.time())
    due_date = None
    if "days_until_due" in params:
        if method != "send_invoice":
            raise ApiError(
                400, "days_until_due can only be set when collection_method is send_invoice.", param="days_until_due"
            )
        due_date = now + 86_400 * as_int(params["days_until_due"], "days_until_due", minimum=0)
    elif "due_date" in params:
        due_date = as_int(params["due_date"], "due_date")
    elif method == "send_invoice":
        raise missing("days_until_due")
    behavior = as_enum(
        params.get("pending_invoice_items_behavior", "exclude"),
        "pending_invoice_items_behavior",
        ("exclude", "include"),
    )
    currency = as_currency(params["currency"], "currency") if "currency" in params else customer["currency"] or "usd"
    invoice_id = f"in_{random_token(24)}"
    invoice: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe stand-in",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": as_bool(params["auto_advance"], "auto_advance") if "auto_advance" in params else False,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": method,
        "created": now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_address": None,
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": params.get("description"),
        "discounts": [],
        "due_date": due_date,
        "effective_at": None,
        "ending_balance": None,
        "footer": params.get("footer"),
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {},
        "livemode": False,
        "metadata": as_metadata(params.get("metadata")),
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": customer["balance"],
        "statement_descriptor": params.get("statement_descriptor"),
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }
    STATE.objects[invoice_id] = invoice
    if behavior == "include":
        for obj in STATE.objects.values():
            pending = obj["object"] == "invoiceitem" and obj["invoice"] is None and obj["customer"] == customer["id"]
            if pending and obj["currency"] == currency:
                obj["invoice"] = invoice_id
    _refresh_invoice(invoice)
    return invoice


def finalize_invoice(params: dict[str, Any], invoice_id: str | None) -> dict[str, Any]:
    check_known(params, FINALIZE_PARAMS)
    invoice = STATE.get("invoice", str(invoice_id), "invoice")
    if invoice["status"] != "draft":
        raise ApiError(
            400,
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    if "auto_advance" in params:
        invoice["auto_advance"] = as_bool(params["auto_advance"], "auto_advance")
    customer = STATE.get("customer", invoice["customer"], "customer")
    now = int(time.time())
    invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
    customer["next_invoice_sequence"] += 1
    token = random_token(40)
    invoice["hosted_invoice_url"] = f"{INVOICE_HOST}/i/{token}"
    invoice["invoice_pdf"] = f"{INVOICE_HOST}/i/{token}/pdf"
    invoice["effective_at"] = now
    invoice["ending_balance"] = invoice["starting_balance"]
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    if invoice["amount_due"] == 0:  # Stripe marks a zero-amount invoice paid as it finalizes
        invoice["status"] = "paid"
        invoice["status_transitions"]["paid_at"] = now
    return invoice


def retrieve_invoice(params: dict[str, Any], invoice_id: str | None) -> dict[str, Any]:
    check_known(params, RETRIEVE_PARAMS)
    return STATE.get("invoice", str(invoice_id), "invoice")


def pay_invoice(invoice_id: str) -> dict[str, Any]:
    """What the customer paying the hosted invoice does."""
    invoice = STATE.get("invoice", invoice_id, "invoice")
    if invoice["status"] != "open":
        raise ApiError(400, f"Invoice {invoice_id} is {invoice['status']}, not open.")
    invoice.update(paid_fields(invoice, int(time.time())))
    return invoice
