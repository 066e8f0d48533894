"""A stand-in of the Stripe API (the few v1 routes the gateway uses) for tests.

It takes the form-encoded requests the real ``stripe`` Python library sends, validates them the way
Stripe does where a mistake would otherwise only show up in production (unknown or missing
parameters, integer amounts, the minimum charge, metadata limits, draft-only invoice edits), answers
with Stripe-shaped objects, replays ``Idempotency-Key`` results like Stripe, and records every call.
Pure helpers build signed webhook events, so the gateway's webhook can be tested without Stripe.
It is a hand-written ASGI app under uvicorn, like the other stand-ins, on ``asgi_kit``.

Run: ``python -m tests.upstreams.stripe_upstream --host 127.0.0.1 --port 8124``
Point the library at it: ``stripe.StripeClient("sk_test_...", base_addresses={"api": root_url})``.
Control routes (no auth): ``GET /_health``, ``GET /_received``, ``POST /_reset``, ``POST /_behavior``,
``POST /_checkout/sessions/{id}/complete``, ``POST /_invoices/{id}/pay``.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.upstreams.asgi_kit import (
    Receive,
    Send,
    UpstreamProcess,
    control_route,
    header_dict,
    read_text,
    send_json,
    start_upstream_process,
)
from tests.upstreams.asgi_kit import main as _serve
from tests.upstreams.stripe_billing import (
    CUSTOMER_PARAMS,
    FINALIZE_PARAMS,
    INVOICE_HOST,
    INVOICE_ITEM_PARAMS,
    INVOICE_PARAMS,
    create_customer,
    create_invoice,
    create_invoice_item,
    finalize_invoice,
    pay_invoice,
    retrieve_customer,
    retrieve_invoice,
)
from tests.upstreams.stripe_core import (
    DEFAULT_BEHAVIOR,
    RETRIEVE_PARAMS,
    STATE,
    ApiError,
    State,
    as_bool,
    as_currency,
    as_enum,
    as_int,
    as_metadata,
    as_str,
    as_url,
    check_known,
    decode_form,
    missing,
    no_such,
    param_names,
    random_token,
)
from tests.upstreams.stripe_events import (
    API_VERSION,
    async_payment_succeeded_event,
    charge_refunded_event,
    checkout_completed_event,
    deliver_event,
    derived_payment_intent,
    encode_event,
    invoice_paid_event,
    make_event,
    sign_payload,
)

__all__ = [  # re-exported from stripe_core, stripe_events and stripe_billing, so tests import from here
    "API_VERSION",
    "CHECKOUT_SESSION_PARAMS",
    "CUSTOMER_PARAMS",
    "DEFAULT_BEHAVIOR",
    "FINALIZE_PARAMS",
    "INVOICE_HOST",
    "INVOICE_ITEM_PARAMS",
    "INVOICE_PARAMS",
    "RETRIEVE_PARAMS",
    "STATE",
    "ApiError",
    "State",
    "StripeProcess",
    "as_bool",
    "as_currency",
    "as_enum",
    "as_int",
    "as_metadata",
    "as_str",
    "as_url",
    "async_payment_succeeded_event",
    "charge_refunded_event",
    "check_known",
    "checkout_completed_event",
    "complete_session",
    "create_checkout_session",
    "create_customer",
    "create_invoice",
    "create_invoice_item",
    "decode_form",
    "deliver_event",
    "derived_payment_intent",
    "encode_event",
    "finalize_invoice",
    "invoice_paid_event",
    "make_event",
    "missing",
    "no_such",
    "pay_invoice",
    "retrieve_checkout_session",
    "retrieve_customer",
    "retrieve_invoice",
    "sign_payload",
    "start_stripe_process",
]

MODULE = "tests.upstreams.stripe_upstream"
CHECKOUT_HOST = "https://checkout.stripe.test"
MIN_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "jpy": 50}  # minor units
MAX_CHARGE = 99_999_999
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

# Wire parameters checkout sessions accept (the library's *Params TypedDicts minus its request options);
# anything else is refused as Stripe does, so a typo in the gateway fails here, not in production.
CHECKOUT_SESSION_PARAMS = param_names(
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


# ---------------------------------------------------------------------------------------------
# handlers: each takes (params, path id) and returns the object to answer with (status 200);
# customers, invoice items and invoices live in stripe_billing


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
    session_id = f"cs_test_a1{random_token(56)}"
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
    return STATE.save(session)


def retrieve_checkout_session(params: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    check_known(params, RETRIEVE_PARAMS)
    return STATE.get("checkout.session", str(session_id), "session")


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
# test-side state changes a real customer would cause in Stripe's UI (pay_invoice is in stripe_billing)


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


# ---------------------------------------------------------------------------------------------
# ASGI plumbing (the shared parts are in asgi_kit)


async def _send_json(send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"request-id", f"req_{random_token(14)}".encode()), *(extra or [])]
    await send_json(send, status, payload, headers, indent=2)


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

    async def reply(status: int, payload: Any) -> None:
        await _send_json(send, status, payload)

    if await control_route(STATE, method, path, body, reply, lambda message: ApiError(400, message)):
        return
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
    text = await read_text(receive)
    extra: list[tuple[bytes, bytes]] = []
    try:
        if path.startswith("/_"):
            return await control(method, path, text, send)
        headers = header_dict(scope)
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
        await STATE.apply_behavior(_behavior_error)
        result = copy.deepcopy(handler(params, object_id))
        if idem_key and method == "POST":  # like Stripe, only requests that executed are replayed
            STATE.idempotent[(api_key, idem_key)] = (method, path, params, 200, result)
        await _send_json(send, 200, result, extra)
    except ApiError as err:
        await _send_json(send, err.status, err.body(), extra)


# ---------------------------------------------------------------------------------------------
# process handle


class StripeProcess(UpstreamProcess):
    """The shared stand-in handle plus the customer-side actions a test needs (pay a session, an invoice)."""

    def complete_session(self, session_id: str, payment_status: str = "paid") -> dict[str, Any]:
        url = f"{self.root_url}/_checkout/sessions/{session_id}/complete"
        return httpx.post(url, json={"payment_status": payment_status}).raise_for_status().json()

    def pay_invoice(self, invoice_id: str) -> dict[str, Any]:
        return httpx.post(f"{self.root_url}/_invoices/{invoice_id}/pay").raise_for_status().json()


def start_stripe_process(port: int | None = None, timeout: float = 15.0) -> StripeProcess:
    """Launch this stand-in as a subprocess (the shared launch loop in asgi_kit) and wait for it."""
    return start_upstream_process(port, timeout, module=MODULE, process_class=StripeProcess)


def main(argv: list[str] | None = None) -> None:
    """CLI entry; a fixed port is required because the caller must know it before we start."""
    _serve(app, __doc__, argv, quiet_dropped=False)


if __name__ == "__main__":
    main()
