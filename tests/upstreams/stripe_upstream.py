"""A stand-in of the Stripe API (the few v1 routes the gateway uses) for tests.

It takes the form-encoded requests the real ``stripe`` Python library sends, validates them the way
Stripe does where a mistake would otherwise only show up in production (unknown or missing
parameters, integer amounts, the minimum charge, metadata limits, draft-only invoice edits), answers
with Stripe-shaped objects, replays ``Idempotency-Key`` results like Stripe, and records every call.
Pure helpers build signed webhook events, so the gateway's webhook can be tested without Stripe.
It is a hand-written ASGI app under uvicorn, like the OpenAI stand-in, and reuses its process handle.

Run: ``python -m tests.upstreams.stripe_upstream --host 127.0.0.1 --port 8124``
Point the library at it: ``stripe.StripeClient("sk_test_...", base_addresses={"api": root_url})``.
Control routes (no auth): ``GET /_health``, ``GET /_received``, ``POST /_reset``, ``POST /_behavior``,
``POST /_checkout/sessions/{id}/complete``, ``POST /_invoices/{id}/pay``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn

from tests.upstreams.openai_upstream import Receive, Send, UpstreamProcess, _read_body, start_upstream_process

MODULE = "tests.upstreams.stripe_upstream"
API_VERSION = "2026-10-28.endive"  # what stripe-python 16.1 pins; events claim the same version
CHECKOUT_HOST = "https://checkout.stripe.test"
INVOICE_HOST = "https://invoice.stripe.test"
MIN_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "jpy": 50}  # minor units
MAX_CHARGE = 99_999_999
DEFAULT_BEHAVIOR: dict[str, Any] = {"status": None, "delay_ms": 0, "times": None}
ERROR_KINDS = {  # status -> (type, code, message), as api.stripe.com answers
    402: ("card_error", "card_declined", "Your card was declined."),
    429: ("invalid_request_error", "rate_limit", "Request rate limit exceeded."),
    500: ("api_error", None, "An unknown error occurred"),
}
NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
    "for details, or we can help at https://support.stripe.com/."
)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Wire parameters each route accepts (the library's *Params TypedDicts minus its request options);
# anything else is refused as Stripe does, so a typo in the gateway fails here, not in production.
CHECKOUT_SESSION_PARAMS = _names(
    "adaptive_pricing after_expiration allow_promotion_codes allowed_payment_method_types automatic_tax "
    "billing_address_collection branding_settings cancel_url client_reference_id consent_collection currency "
    "custom_fields custom_text customer customer_account customer_creation customer_email customer_update discounts "
    "excluded_payment_method_types expand expires_at integration_identifier invoice_creation line_items locale "
    "managed_payments metadata mode name_collection optional_items origin_context payment_intent_data "
    "payment_method_collection payment_method_configuration payment_method_data payment_method_options permissions "
    "phone_number_collection redirect_on_completion return_url saved_payment_method_options setup_intent_data "
    "shipping_address_collection shipping_options submit_type subscription_data success_url tax_id_collection "
    "ui_mode wallet_options"
)
CUSTOMER_PARAMS = _names(
    "address balance business_name cash_balance description email expand individual_name invoice_prefix "
    "invoice_settings metadata name next_invoice_sequence payment_method phone preferred_locales shipping source "
    "tax tax_exempt tax_id_data test_clock validate"
)
INVOICE_ITEM_PARAMS = _names(
    "amount currency customer customer_account description discountable discounts expand invoice metadata period "
    "price_data pricing quantity quantity_decimal subscription tax_behavior tax_code tax_rates unit_amount_decimal"
)
INVOICE_PARAMS = _names(
    "account_tax_ids application_fee_amount auto_advance automatic_tax automatically_finalizes_at collection_method "
    "currency custom_fields customer customer_account days_until_due default_payment_method default_source "
    "default_tax_rates description discounts due_date effective_at expand footer from_invoice issuer metadata "
    "number on_behalf_of payment_settings pending_invoice_items_behavior rendering shipping_cost shipping_details "
    "statement_descriptor subscription transfer_data"
)
FINALIZE_PARAMS = frozenset({"auto_advance", "expand"})
RETRIEVE_PARAMS = frozenset({"expand"})


class ApiError(Exception):
    """Raised by handlers to answer with a Stripe-shaped error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def body(self) -> dict[str, Any]:
        """Stripe omits absent fields rather than sending nulls."""
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(kind: str, object_id: str, param: str) -> ApiError:
    return ApiError(404, f"No such {kind}: '{object_id}'", param=param, code="resource_missing")


class State:
    """Process-wide objects, recordings and behaviour; one event loop, so no locking is needed."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.behavior: dict[str, Any] = dict(DEFAULT_BEHAVIOR)
        self.objects: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[tuple[str, str], tuple[str, str, Any, int, dict[str, Any]]] = {}

    def take_behavior(self) -> dict[str, Any]:
        """Return the behaviour for this request, counting down ``times`` and reverting at zero."""
        current = dict(self.behavior)
        if current["times"] is not None:
            self.behavior["times"] -= 1
            if self.behavior["times"] <= 0:
                self.behavior = dict(DEFAULT_BEHAVIOR)
        return current

    def get(self, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise no_such(kind, object_id, param)
        return obj


STATE = State()


# ---------------------------------------------------------------------------------------------
# form decoding and parameter checks

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket encoding to nested data: ``a[b][0][c]=v`` -> ``{"a": {"b": [{"c": "v"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.fullmatch(key)
        if not match:
            raise ApiError(400, f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part or str(len(node)), {})
            if not isinstance(child, dict):
                raise ApiError(400, f"Invalid hash: {key} mixes a value and nested keys", param=key)
            node = child
        last = parts[-1] or str(len(node))
        if isinstance(node.get(last), dict):
            raise ApiError(400, f"Invalid hash: {key} mixes a value and nested keys", param=key)
        node[last] = value
    return _listify(root, "")


def _listify(node: Any, name: str) -> Any:
    """Dicts keyed 0..n become lists, except metadata, whose keys are the caller's."""
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if name != "metadata" and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def check_known(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in params:
        if key not in allowed:
            raise ApiError(400, f"Received unknown parameter: {key}", param=key, code="parameter_unknown")


def as_int(value: Any, param: str, *, minimum: int | None = None) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise ApiError(400, f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ApiError(400, f"This value must be greater than or equal to {minimum}.", param=param)
    return number


def as_bool(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise ApiError(400, f"Invalid boolean: {value}", param=param)
    return value == "true"


def as_str(value: Any, param: str, *, max_len: int = 5000) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"Invalid string: {param} must be a string", param=param)
    if len(value) > max_len:
        raise ApiError(400, f"Invalid string: {param} must be at most {max_len} characters", param=param)
    return value


def as_currency(value: Any, param: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ApiError(400, f"Invalid currency: {value}", param=param, code="parameter_invalid_string")
    return value.lower()


def as_enum(value: Any, param: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ApiError(400, f"Invalid {param}: must be one of {', '.join(choices)}", param=param)
    return str(value)


def as_metadata(value: Any) -> dict[str, str]:
    """Stripe's limits: 50 keys, keys up to 40 characters, values up to 500; empty values unset a key."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid object", param="metadata")
    if len(value) > 50:
        raise ApiError(400, "Invalid metadata: metadata can have up to 50 keys", param="metadata")
    out: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > 40:
            raise ApiError(400, f"Metadata keys must be at most 40 characters: {key}", param=f"metadata[{key}]")
        if not isinstance(item, str):
            raise ApiError(400, "Metadata values must be strings", param=f"metadata[{key}]")
        if len(item) > 500:
            raise ApiError(400, "Metadata values can have up to 500 characters", param=f"metadata[{key}]")
        if item:
            out[key] = item
    return out


def as_url(value: Any, param: str) -> str:
    text = as_str(value, param)
    if not re.match(r"https?://[^/\s]+", text):
        raise ApiError(400, "Not a valid URL", param=param, code="url_invalid")
    return text


def _token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def derived_payment_intent(session_id: str) -> str:
    """The PaymentIntent id a completed session gets, fixed per session so tests can predict it."""
    return "pi_" + hashlib.sha256(session_id.encode()).hexdigest()[:24]


# ---------------------------------------------------------------------------------------------
# handlers: each takes (params, path id) and returns the object to answer with (status 200)


def create_checkout_session(params: dict[str, Any], _: str | None) -> dict[str, Any]:
    check_known(params, CHECKOUT_SESSION_PARAMS)
    mode = params.get("mode")
    if mode is None:
        raise missing("mode")
    if mode != "payment":
        raise ApiError(400, "The Stripe stand-in supports mode=payment only", param="mode")
    items = params.get("line_items")
    if not items:
        raise missing("line_items")
    if not isinstance(items, list):
        raise ApiError(400, "Invalid array", param="line_items")
    currencies, total = set(), 0
    for i, item in enumerate(items):
        where = f"line_items[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, "Invalid object", param=where)
        if "price" in item:
            raise no_such("price", str(item["price"]), f"{where}[price]")
        data = item.get("price_data")
        if not isinstance(data, dict):
            raise missing(f"{where}[price_data]")
        if "currency" not in data:
            raise missing(f"{where}[price_data][currency]")
        currencies.add(as_currency(data["currency"], f"{where}[price_data][currency]"))
        product = data.get("product_data")
        if "product" not in data and not (isinstance(product, dict) and product.get("name")):
            raise missing(f"{where}[price_data][product_data][name]")
        if "unit_amount" not in data:
            raise missing(f"{where}[price_data][unit_amount]")
        unit = as_int(data["unit_amount"], f"{where}[price_data][unit_amount]", minimum=0)
        if "quantity" not in item:
            raise missing(f"{where}[quantity]")
        total += unit * as_int(item["quantity"], f"{where}[quantity]", minimum=1)
    if len(currencies) > 1:
        raise ApiError(400, "All line items must use the same currency.", param="line_items")
    currency = currencies.pop()
    minimum = MIN_CHARGE.get(currency, 50)
    if total < minimum:
        raise ApiError(
            400,
            f"The Checkout Session's total amount due must add up to at least {minimum} ({currency}).",
            param="line_items",
            code="amount_too_small",
        )
    if total > MAX_CHARGE:
        raise ApiError(400, f"Amount must be no more than {MAX_CHARGE}", param="line_items", code="amount_too_large")
    customer = params.get("customer")
    if customer is not None:
        STATE.get("customer", customer, "customer")
    now = int(time.time())
    session_id = f"cs_test_a1{_token(56)}"
    session: dict[str, Any] = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": as_url(params["cancel_url"], "cancel_url") if "cancel_url" in params else None,
        "client_reference_id": (
            as_str(params["client_reference_id"], "client_reference_id", max_len=200)
            if "client_reference_id" in params
            else None
        ),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_creation": None if customer else params.get("customer_creation", "if_required"),
        "customer_details": None,
        "customer_email": params.get("customer_email"),
        "discounts": [],
        "expires_at": as_int(params["expires_at"], "expires_at") if "expires_at" in params else now + 86_400,
        "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": None},
        "livemode": False,
        "locale": params.get("locale"),
        "metadata": as_metadata(params.get("metadata")),
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_options": {},
        "payment_method_types": params.get("payment_method_types") or ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": params.get("submit_type"),
        "subscription": None,
        "success_url": as_url(params["success_url"], "success_url") if "success_url" in params else None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": params.get("ui_mode", "hosted"),
        "url": f"{CHECKOUT_HOST}/c/pay/{session_id}",
        "wallet_options": None,
    }
    STATE.objects[session_id] = session
    return session


def retrieve_checkout_session(params: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    check_known(params, RETRIEVE_PARAMS)
    return STATE.get("checkout.session", str(session_id), "session")


def create_customer(params: dict[str, Any], _: str | None) -> dict[str, Any]:
    check_known(params, CUSTOMER_PARAMS)
    customer_id = f"cus_{_token(14)}"
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
        "invoice_prefix": params.get("invoice_prefix") or _token(8, string.ascii_uppercase + string.digits),
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
    STATE.objects[customer_id] = customer
    return customer


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
    item_id = f"ii_{_token(24)}"
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
    invoice_id = f"in_{_token(24)}"
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
    token = _token(40)
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


Handler = Callable[[dict[str, Any], str | None], dict[str, Any]]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(r"/v1/checkout/sessions"), create_checkout_session),
    ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)"), retrieve_checkout_session),
    ("POST", re.compile(r"/v1/customers"), create_customer),
    ("GET", re.compile(r"/v1/customers/(?P<id>[^/]+)"), retrieve_customer),
    ("POST", re.compile(r"/v1/invoiceitems"), create_invoice_item),
    ("POST", re.compile(r"/v1/invoices"), create_invoice),
    ("POST", re.compile(r"/v1/invoices/(?P<id>[^/]+)/finalize"), finalize_invoice),
    ("GET", re.compile(r"/v1/invoices/(?P<id>[^/]+)"), retrieve_invoice),
]


def route(method: str, path: str) -> tuple[Handler, str | None]:
    for verb, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and verb == method:
            return handler, match.groupdict().get("id")
    raise ApiError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
        "https://support.stripe.com/.",
    )


# ---------------------------------------------------------------------------------------------
# test-side state changes a real customer would cause in Stripe's UI


def complete_session(session_id: str, payment_status: str = "paid") -> dict[str, Any]:
    """What paying on the hosted page does: the session completes and gets its PaymentIntent."""
    session = STATE.get("checkout.session", session_id, "session")
    session.update(
        status="complete",
        payment_status=payment_status,
        payment_intent=derived_payment_intent(session_id),
        customer_details=_customer_details(session["customer_email"]),
    )
    return session


def _customer_details(email: str | None) -> dict[str, Any]:
    return {"address": None, "email": email, "name": None, "phone": None, "tax_exempt": "none", "tax_ids": []}


def pay_invoice(invoice_id: str) -> dict[str, Any]:
    """What the customer paying the hosted invoice does."""
    invoice = STATE.get("invoice", invoice_id, "invoice")
    if invoice["status"] != "open":
        raise ApiError(400, f"Invoice {invoice_id} is {invoice['status']}, not open.")
    invoice.update(_paid_fields(invoice, int(time.time())))
    return invoice


def _paid_fields(invoice: dict[str, Any], at: int) -> dict[str, Any]:
    return {
        "status": "paid",
        "amount_paid": invoice["amount_due"],
        "amount_remaining": 0,
        "attempted": True,
        "attempt_count": max(invoice["attempt_count"], 1),
        "status_transitions": {**invoice["status_transitions"], "paid_at": at},
    }


# ---------------------------------------------------------------------------------------------
# webhook events (pure helpers for tests)


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
    paid = {**copy.deepcopy(invoice), **_paid_fields(invoice, at)}
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


# ---------------------------------------------------------------------------------------------
# ASGI plumbing


async def _send_json(send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(payload, indent=2).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"request-id", f"req_{_token(14)}".encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _masked(key: str) -> str:
    return key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else key[:3] + "***"


def authenticate(headers: dict[str, str]) -> str:
    """Only ``Bearer sk_test_...`` keys pass; errors mirror Stripe's 401 bodies."""
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        raise ApiError(401, NO_KEY_MESSAGE)
    key = auth[7:].strip()
    if not re.fullmatch(r"sk_test_[A-Za-z0-9_]+", key):
        raise ApiError(401, f"Invalid API Key provided: {_masked(key)}", code="api_key_invalid")
    return key


def _behavior_error(status: int) -> ApiError:
    type_, code, message = ERROR_KINDS.get(status, ("api_error", None, f"Simulated Stripe error {status}"))
    return ApiError(status, message, code=code, type_=type_)


async def control(method: str, path: str, text: str, send: Send) -> None:
    """Test-only routes; never recorded and never authenticated."""
    try:
        body = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ApiError(400, f"control routes take JSON: {exc}") from exc
    if (method, path) == ("GET", "/_health"):
        return await _send_json(send, 200, {"ok": True})
    if (method, path) == ("GET", "/_received"):
        return await _send_json(send, 200, STATE.received)
    if (method, path) == ("POST", "/_reset"):
        STATE.received.clear()
        STATE.behavior = dict(DEFAULT_BEHAVIOR)
        return await _send_json(send, 200, {"ok": True})
    if (method, path) == ("POST", "/_behavior"):
        if not isinstance(body, dict) or set(body) - set(DEFAULT_BEHAVIOR):
            raise ApiError(400, f"behavior must be an object with keys from {sorted(DEFAULT_BEHAVIOR)}")
        STATE.behavior = {**DEFAULT_BEHAVIOR, **body}
        return await _send_json(send, 200, STATE.behavior)
    if method == "POST" and (match := re.fullmatch(r"/_checkout/sessions/([^/]+)/complete", path)):
        return await _send_json(send, 200, complete_session(match.group(1), body.get("payment_status", "paid")))
    if method == "POST" and (match := re.fullmatch(r"/_invoices/([^/]+)/pay", path)):
        return await _send_json(send, 200, pay_invoice(match.group(1)))
    raise ApiError(404, f"Unrecognized control URL ({method}: {path})")


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI entry point: record, authenticate, replay idempotent results, apply behaviour, dispatch."""
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    text = (await _read_body(receive)).decode("utf-8", errors="replace")
    extra: list[tuple[bytes, bytes]] = []
    try:
        if path.startswith("/_"):
            return await control(method, path, text, send)
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            headers[key] = f"{headers[key]}, {v.decode('latin-1')}" if key in headers else v.decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        pairs = parse_qsl(text if method == "POST" else query, keep_blank_values=True)
        idem_key = headers.get("idempotency-key")
        record: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "idempotency_key": idem_key,
            "form": dict(pairs),
            "params": None,
            "body": text,
        }
        STATE.received.append(record)
        extra.append((b"stripe-version", headers.get("stripe-version", API_VERSION).encode("latin-1")))
        api_key = authenticate(headers)
        params = decode_form(pairs)
        record["params"] = params
        if idem_key and method == "POST":
            extra.append((b"idempotency-key", idem_key.encode("latin-1")))
            seen = STATE.idempotent.get((api_key, idem_key))
            if seen is not None:
                if seen[:3] != (method, path, params):
                    raise ApiError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{idem_key}' if you meant to execute a different "
                        "request.",
                        type_="idempotency_error",
                    )
                return await _send_json(send, seen[3], seen[4], [*extra, (b"idempotent-replayed", b"true")])
        handler, object_id = route(method, path)
        behavior = STATE.take_behavior()
        if behavior["delay_ms"]:
            await asyncio.sleep(behavior["delay_ms"] / 1000)
        if behavior["status"]:
            raise _behavior_error(int(behavior["status"]))
        result = copy.deepcopy(handler(params, object_id))
        if idem_key and method == "POST":  # like Stripe, only requests that executed are replayed
            STATE.idempotent[(api_key, idem_key)] = (method, path, params, 200, result)
        await _send_json(send, 200, result, extra)
    except ApiError as err:
        await _send_json(send, err.status, err.body(), extra)


# ---------------------------------------------------------------------------------------------
# process handle


class StripeProcess(UpstreamProcess):
    """The OpenAI stand-in's handle plus the customer-side actions a test needs (pay a session, an invoice)."""

    def complete_session(self, session_id: str, payment_status: str = "paid") -> dict[str, Any]:
        url = f"{self.root_url}/_checkout/sessions/{session_id}/complete"
        return httpx.post(url, json={"payment_status": payment_status}).raise_for_status().json()

    def pay_invoice(self, invoice_id: str) -> dict[str, Any]:
        return httpx.post(f"{self.root_url}/_invoices/{invoice_id}/pay").raise_for_status().json()


def start_stripe_process(port: int | None = None, timeout: float = 15.0) -> StripeProcess:
    """Launch this stand-in as a subprocess (the shared launch loop in openai_upstream) and wait for it."""
    return start_upstream_process(port, timeout, module=MODULE, process_class=StripeProcess)


def main(argv: list[str] | None = None) -> None:
    """CLI entry; a fixed port is required because the caller must know it before we start."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.port <= 0:
        parser.error("--port must be a real port, not 0")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
