"""POST /stripe/webhook: Stripe's signed events. The signature is checked over the raw body first;
a bad or stale signature is a 400 and changes nothing; unknown events are acknowledged and ignored."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import gateway_of, json_response
from server.billing.service import handle_event, stripe_api


@post(["/stripe/webhook", "/v1/stripe/webhook"], status_code=200)
async def stripe_webhook(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    payload = await request.body()
    event = stripe_api(gw).verify(payload, request.headers.get("stripe-signature"))
    outcome = await handle_event(gw, event)
    return json_response({"received": True, "outcome": outcome})
