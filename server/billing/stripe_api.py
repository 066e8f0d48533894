"""Stripe calls the gateway makes (Checkout Sessions, invoices) and webhook signature checks.

The real `stripe` library does the talking; its base URL comes from config so tests use a local
stand-in. Library calls are synchronous, so they run in a worker thread, off the event loop.
Secrets come from the environment and never appear in errors or logs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import stripe

from server.billing.topups import micro_to_cents
from server.errors import (
    INVALID_AMOUNT,
    INVALID_EVENT,
    INVALID_JSON,
    INVALID_SIGNATURE,
    STRIPE_ERROR,
    STRIPE_NOT_CONFIGURED,
)
from server.settings import StripeSettings


class StripeApi:
    def __init__(self, settings: StripeSettings, currency: str) -> None:
        self._settings = settings
        self._currency = currency.lower()

    def _client(self) -> stripe.StripeClient:
        key = self._settings.api_key()
        if not key:
            raise STRIPE_NOT_CONFIGURED(what="is", variable=self._settings.api_key_env)
        options: dict[str, Any] = {"max_network_retries": 2}
        if self._settings.api_base:
            options["base_addresses"] = {"api": self._settings.api_base}
        return stripe.StripeClient(key, **options)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except stripe.StripeError as exc:
            raise STRIPE_ERROR(detail=exc.user_message or type(exc).__name__) from None

    async def checkout(self, project_id: str, project_name: str, amount_micro: int, order_id: str) -> tuple[str, str]:
        """A payment-mode Checkout Session for a wallet top-up; returns (session id, URL)."""
        try:
            cents = micro_to_cents(amount_micro)
        except ValueError as exc:
            raise INVALID_AMOUNT(field="amount", detail=exc) from None
        client = self._client()
        params = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": self._currency,
                        "unit_amount": cents,
                        "product_data": {"name": f"Gateway credits for {project_name}"},
                    },
                    "quantity": 1,
                }
            ],
            "metadata": {"project_id": project_id, "order_id": order_id},
            "client_reference_id": project_id,
            "success_url": self._settings.success_url,
            "cancel_url": self._settings.cancel_url,
        }
        session = await self._call(
            client.v1.checkout.sessions.create, params=params, options={"idempotency_key": order_id}
        )
        return session.id, session.url

    async def push_invoice(self, customer: str, invoice: dict[str, Any]) -> str:
        """Create, fill and finalize a Stripe invoice mirroring ours; returns the Stripe invoice id."""
        client = self._client()
        number = invoice["number"]
        created = await self._call(
            client.v1.invoices.create,
            params={
                "customer": customer,
                "collection_method": "send_invoice",
                "days_until_due": 30 if invoice.get("payment_terms_days") is None else invoice["payment_terms_days"],
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "metadata": {
                    "gateway_invoice": number,
                    "project_id": invoice["project"]["id"],
                    "month": invoice["month"],
                },
            },
            options={"idempotency_key": f"{number}-invoice"},
        )
        items = [(line["amount_micro"], f"{line['model']}: {line['requests']} requests") for line in invoice["lines"]]
        items += [(tax["amount_micro"], f"{tax['name']} {tax['rate']} %") for tax in invoice.get("taxes") or []]
        for index, (micro, description) in enumerate(items):
            cents = -(-micro // 10_000)  # Stripe bills whole cents: round up the line
            await self._call(
                client.v1.invoice_items.create,
                params={
                    "customer": customer,
                    "invoice": created.id,
                    "amount": cents,
                    "currency": self._currency,
                    "description": description,
                },
                options={"idempotency_key": f"{number}-line-{index}"},
            )
        await self._call(client.v1.invoices.finalize_invoice, created.id)
        return str(created.id)

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, if the signature is valid and fresh; else a 400 (nothing is changed)."""
        secret = self._settings.webhook_secret()
        if not secret:
            raise STRIPE_NOT_CONFIGURED(what="webhooks are", variable=self._settings.webhook_secret_env)
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature or "", secret, self._settings.tolerance_seconds)
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            raise INVALID_SIGNATURE() from None
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise INVALID_JSON(detail="the webhook body") from None
        data = event.get("data") if isinstance(event, dict) else None
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("id"), str)
            or not isinstance(event.get("type"), str)
            or not isinstance(data, dict)
            or not isinstance(data.get("object"), dict)
        ):
            raise INVALID_EVENT()
        return event
