"""Webhook endpoints as the APIs use them: register (URL checked against SSRF, secret shown once), list,
delete, rotate the secret, enable again; test events, deliveries and redelivery for operators.

It also keeps in memory which projects subscribe to `request.completed` (`subscriptions.completed`, read
by settlement on every request so that event is written only where someone listens) and owns the
delivery worker. Every change writes the store first, then refreshes that view from it. Errors are rows
of the error table: 400 `url_refused` (with why), 400 `unknown_event_type`, 404 `webhook_endpoint_not_found`
(also for another project's endpoint), 409 `endpoint_not_enabled`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from server.clock import now_ms
from server.errors import (
    DELIVERY_NOT_FOUND,
    ENDPOINT_NOT_ENABLED,
    INVALID_TYPE,
    TOO_LONG,
    TOO_MANY_ENDPOINTS,
    UNKNOWN_EVENT_TYPE,
    URL_REFUSED,
    WEBHOOK_ENDPOINT_NOT_FOUND,
)
from server.events.outbox import EVENT_TYPES, REQUEST_COMPLETED
from server.settings import WebhookSettings
from server.store.protocol import Event
from server.store.webhook_protocol import ENABLED, WebhookEndpoint, WebhookStore
from server.webhooks import addresses
from server.webhooks.message import new_secret
from server.webhooks.worker import DeliveryWorker

MAX_ENDPOINTS_PER_PROJECT = 16
MAX_DESCRIPTION = 500
ROTATION_OVERLAP_MS = 24 * 3_600_000  # the old secret keeps signing beside the new one this long
TEST_EVENT = "webhook.test"


class Subscriptions:
    """Which projects have an enabled endpoint, and which subscribe to request.completed (the hot path's
    question: one set lookup per request; empty when nobody listens)."""

    def __init__(self) -> None:
        self.completed: set[str] = set()
        self.enabled = 0

    def refresh(self, endpoints: Iterable[WebhookEndpoint]) -> None:
        live = [e for e in endpoints if e.status == ENABLED]
        self.enabled = len(live)
        self.completed.clear()  # in place: settlement holds this very set
        self.completed.update(e.project_id for e in live if REQUEST_COMPLETED in e.events)


def view(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    """An endpoint as the APIs answer it; the secret only when it was just made (create, rotate)."""
    shown: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "project_id": endpoint.project_id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "status": endpoint.status,
        "created_at": endpoint.created_ms // 1000,
        "created_ms": endpoint.created_ms,
        "previous_secret_expires_ms": endpoint.prev_secret_until_ms if endpoint.prev_secret else None,
        "failing_since_ms": endpoint.failing_since_ms,
        "disabled_ms": endpoint.disabled_ms,
        "disabled_reason": endpoint.disabled_reason,
    }
    if secret is not None:
        shown["secret"] = secret
    return shown


def _events(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise INVALID_TYPE(field="events", what="a non-empty array of event types")
    for name in value:
        if name not in EVENT_TYPES:
            raise UNKNOWN_EVENT_TYPE(event=name, known=", ".join(EVENT_TYPES), param="events")
    return tuple(dict.fromkeys(value))


def _description(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise INVALID_TYPE(field="description", what="a string")
    if value and len(value) > MAX_DESCRIPTION:
        raise TOO_LONG(field="description", limit=MAX_DESCRIPTION)
    return value or None


class Webhooks:
    def __init__(
        self, settings: WebhookSettings, store: WebhookStore, may_run: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """`may_run`: on a shared store, whether this process holds the fleet's lease on deliveries; the
        worker then asks the store each round (another process may have added the endpoint)."""
        self.settings = settings
        self.store = store
        self.subscriptions = Subscriptions()
        shared = may_run is not None
        self.worker = DeliveryWorker(
            store,
            settings,
            active=lambda: shared or self.subscriptions.enabled > 0,
            on_disabled=self.refresh,
            may_run=may_run,
        )

    async def refresh(self) -> None:
        """Re-read which endpoints are enabled (after any change to one)."""
        self.subscriptions.refresh(await self.store.endpoints())

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    async def check_url(self, url: Any) -> None:
        """Refuse (400 url_refused) a URL that is malformed, not https (unless allowed) or not public."""
        try:
            await addresses.check(
                url,
                allow_http=self.settings.allow_http,
                allow=addresses.networks(self.settings.allow_networks),
                resolver=self.worker.resolver,
            )
        except addresses.Refused as exc:
            raise URL_REFUSED(detail=str(exc).rstrip("."), param="url") from None

    async def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new endpoint for the project; its secret is in this answer only."""
        events = _events(body.get("events"))
        description = _description(body.get("description"))
        url = body.get("url")
        await self.check_url(url)
        if len(await self.store.endpoints(project_id)) >= MAX_ENDPOINTS_PER_PROJECT:
            raise TOO_MANY_ENDPOINTS(limit=MAX_ENDPOINTS_PER_PROJECT)
        endpoint = WebhookEndpoint(
            id=f"we_{secrets.token_hex(8)}",
            project_id=project_id,
            url=str(url),
            events=events,
            description=description,
            secret=new_secret(),
            status=ENABLED,
            created_ms=now_ms(),
        )
        await self.store.create_endpoint(endpoint)
        await self.refresh()
        return view(endpoint, endpoint.secret)

    async def find(self, endpoint_id: str, project_id: str | None = None) -> WebhookEndpoint:
        """An endpoint (of `project_id` when given: another project's is not found either)."""
        endpoint = await self.store.endpoint(endpoint_id)
        if endpoint is None or (project_id is not None and endpoint.project_id != project_id):
            raise WEBHOOK_ENDPOINT_NOT_FOUND(ref=endpoint_id)
        return endpoint

    async def get(self, endpoint_id: str, project_id: str | None = None) -> dict[str, Any]:
        return view(await self.find(endpoint_id, project_id))

    async def list(self, project_id: str | None = None) -> list[dict[str, Any]]:
        return [view(e) for e in await self.store.endpoints(project_id)]

    async def delete(self, endpoint_id: str, project_id: str | None = None) -> dict[str, Any]:
        endpoint = await self.find(endpoint_id, project_id)
        await self.store.delete_endpoint(endpoint.id, now_ms())
        await self.refresh()
        return {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}

    async def rotate(self, endpoint_id: str, project_id: str | None = None) -> dict[str, Any]:
        """A new secret; the old one keeps signing beside it for 24 hours (two signatures per delivery)."""
        endpoint = await self.find(endpoint_id, project_id)
        secret = new_secret()
        rotated = await self.store.rotate_secret(endpoint.id, secret, endpoint.secret, now_ms() + ROTATION_OVERLAP_MS)
        return view(rotated, secret)

    async def enable(self, endpoint_id: str) -> dict[str, Any]:
        """Deliver to a disabled endpoint again (new events; failed deliveries only when redelivered)."""
        endpoint = await self.store.enable_endpoint((await self.find(endpoint_id)).id)
        await self.refresh()
        self.worker.wake()
        return view(endpoint)

    def _enabled(self, endpoint: WebhookEndpoint) -> None:
        if endpoint.status != ENABLED:
            hint = f"enable it first (gatewayctl webhooks enable {endpoint.id})"
            raise ENDPOINT_NOT_ENABLED(ref=endpoint.id, status=endpoint.status, hint=hint)

    async def send_test(self, endpoint_id: str) -> dict[str, Any]:
        """A `webhook.test` event for this endpoint alone, through the same durable path as any event."""
        endpoint = await self.find(endpoint_id)
        self._enabled(endpoint)
        when = now_ms()
        event_id = f"evt_test_{secrets.token_hex(8)}"
        payload = {"project_id": endpoint.project_id, "endpoint_id": endpoint.id, "message": "a test event"}
        delivery_id = await self.store.add_test_event(
            Event(event_id, TEST_EVENT, endpoint.project_id, payload, when), endpoint.id
        )
        self.worker.wake()
        return await self.delivery(delivery_id)

    async def deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        return await self.store.deliveries(**filters)

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        found = await self.store.delivery(delivery_id)
        if found is None:
            raise DELIVERY_NOT_FOUND(ref=delivery_id)
        return found

    async def redeliver(self, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again from its first attempt, same event id (receivers deduplicate by it)."""
        found = await self.delivery(delivery_id)
        endpoint = await self.store.endpoint(found["endpoint_id"])
        if endpoint is None:
            raise ENDPOINT_NOT_ENABLED(ref=found["endpoint_id"], status="deleted", hint="it cannot be delivered to")
        self._enabled(endpoint)
        await self.store.redeliver(delivery_id)
        self.worker.wake()
        return await self.delivery(delivery_id)
