"""What webhook delivery asks of storage, as typed records: endpoints, the deliveries fanned out from the
outbox, and the record of every attempt.

Deliveries are created in the transaction that writes their event (the store fans an event out to the
enabled endpoints of its project that subscribe to its type), so an event and its deliveries survive a
crash together. Everything the worker knows lives in these rows: a restart (or kill -9) loses at most
the answer to an attempt in flight, which is then sent again (at least once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from server.store.protocol import Event

ENABLED, DISABLED, DELETED = "enabled", "disabled", "deleted"
PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"


@dataclass(slots=True, frozen=True)
class WebhookEndpoint:
    id: str
    project_id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    secret: str
    status: str  # enabled | disabled | deleted
    created_ms: int
    prev_secret: str | None = None
    prev_secret_until_ms: int | None = None
    failing_since_ms: int | None = None
    paused_until_ms: int | None = None
    disabled_ms: int | None = None
    disabled_reason: str | None = None

    def signing_secrets(self, now_ms: int) -> tuple[str, ...]:
        """The current secret, and the previous one while its overlap after a rotation lasts."""
        if self.prev_secret and (self.prev_secret_until_ms or 0) > now_ms:
            return (self.secret, self.prev_secret)
        return (self.secret,)


@dataclass(slots=True, frozen=True)
class Delivery:
    """One event on its way to one endpoint, with what its body is rendered from."""

    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    project_id: str
    event_ms: int
    status: str
    attempts: int  # made since it was queued (or re-queued by redeliver)
    payload: Mapping[str, Any]


@dataclass(slots=True, frozen=True)
class AttemptRecord:
    """One attempt and what the delivery becomes after it (delivered, pending for a retry, or failed)."""

    delivery_id: str
    started_ms: int
    latency_ms: int
    ok: bool
    response_code: int | None
    response_body: str | None
    error: str | None
    delivery_status: str


@dataclass(slots=True, frozen=True)
class LaneUpdate:
    """A round of attempts to one endpoint and the endpoint's resulting state, written in one transaction.
    `disabled_reason` set: the endpoint is disabled now and its pending deliveries fail."""

    endpoint_id: str
    attempts: tuple[AttemptRecord, ...]
    failing_since_ms: int | None
    paused_until_ms: int | None
    disabled_reason: str | None
    when_ms: int


class WebhookStore(Protocol):
    async def create_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    async def endpoints(self, project_id: str | None = None) -> list[WebhookEndpoint]:
        """Endpoints not deleted (of one project, or all), oldest first."""
        ...

    async def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        """An endpoint not deleted, or None."""
        ...

    async def delete_endpoint(self, endpoint_id: str, when_ms: int) -> None:
        """Mark it deleted; its pending deliveries are cancelled."""
        ...

    async def rotate_secret(
        self, endpoint_id: str, secret: str, prev_secret: str, prev_until_ms: int
    ) -> WebhookEndpoint: ...

    async def enable_endpoint(self, endpoint_id: str) -> WebhookEndpoint: ...

    async def due_endpoints(self, now_ms: int) -> list[WebhookEndpoint]:
        """Enabled endpoints with pending deliveries that are not paused after a failure."""
        ...

    async def lane(self, endpoint_id: str, limit: int) -> tuple[WebhookEndpoint | None, list[Delivery]]:
        """An endpoint as it is now, and its oldest pending deliveries in event order."""
        ...

    async def record_round(self, update: LaneUpdate) -> None: ...

    async def add_test_event(self, event: Event, endpoint_id: str) -> str:
        """Write an event delivered to this one endpoint only; returns the delivery id."""
        ...

    async def deliveries(
        self,
        *,
        project_id: str | None = None,
        endpoint_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Deliveries, newest event first, with their endpoint's URL."""
        ...

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery with every attempt made for it."""
        ...

    async def redeliver(self, delivery_id: str) -> None:
        """Queue a delivery again for its first attempt (same event id), ahead of its endpoint's pause."""
        ...

    async def purge(self, before_ms: int) -> int:
        """Drop finished deliveries (and their attempts) of events older than `before_ms`, and those events
        once no delivery refers to them; pending deliveries and their events stay. Returns events dropped."""
        ...
