"""The delivery worker: a background task of the server that sends pending webhook deliveries.

Every half second (or at once when woken) it asks the store which enabled endpoints have pending
deliveries and are not paused, and runs one *lane* per such endpoint (at most `MAX_LANES` at once, so a
thousand endpoints do not open a thousand connections). A lane takes its endpoint's oldest pending
deliveries in event order, `concurrency_per_endpoint` at a time, attempts them (SSRF check against a
fresh DNS answer, sign, POST, within `timeout_s`), and records every attempt and the endpoint's state in
one write. After a failure the lane stops and the endpoint waits for its retry time (the rest of its
deliveries wait behind the failed one: order per endpoint); a slow or hanging endpoint holds only its
own lane, never another endpoint's.

Nothing lives only in memory: what is pending, paused or disabled is in the store, so a restart (even
kill -9) resumes where the rows say. An attempt whose answer was not recorded before a crash is sent
again (at least once; receivers deduplicate by `webhook-id`). A lane that fails unexpectedly is logged
and its endpoint left alone for `COOLDOWN_S`; the store being unwritable just stops the round.

On a shared store (a fleet of processes on PostgreSQL) only the process holding the `webhooks` lease
runs rounds (`may_run`); when it dies its lease expires and another process's worker takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from server.clock import now_ms
from server.settings import WebhookSettings
from server.store.webhook_protocol import Delivery, WebhookEndpoint, WebhookStore
from server.webhooks import addresses, message
from server.webhooks.schedule import plan_round
from server.webhooks.sender import Answer, Sender, failed, start_clock

log = logging.getLogger("gateway.webhooks")

MAX_LANES = 64
COOLDOWN_S = 5.0


class DeliveryWorker:
    def __init__(
        self,
        store: WebhookStore,
        settings: WebhookSettings,
        *,
        active: Callable[[], bool],
        on_disabled: Callable[[], Awaitable[None]],
        resolver: addresses.Resolver = addresses.system_resolver,
        sender: Sender | None = None,
        may_run: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._allow = addresses.networks(settings.allow_networks)
        self._active = active  # any endpoint enabled: otherwise there is nothing to ask the store
        self._on_disabled = on_disabled
        self._may_run = may_run  # this process holds the fleet's lease on deliveries (None: always)
        self.resolver = resolver
        self.sender = sender or Sender(settings.timeout_s)
        self.poll_s = 0.5
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._cooldown: dict[str, float] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-deliveries")

    async def stop(self) -> None:
        """Cancel the loop and the attempts in flight (their deliveries stay pending, sent after a restart)."""
        tasks = [t for t in (self._task, *self._lanes.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None

    def wake(self) -> None:
        """Look for work now (a test event, a redelivery, a new endpoint) rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if self._active():
                try:
                    if self._may_run is None or await self._may_run():
                        self._start_lanes(await self._store.due_endpoints(now_ms()))
                except Exception as exc:  # the store unreadable for a moment: try again at the next poll
                    log.warning("webhook deliveries: cannot read the queue: %r", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()

    def _start_lanes(self, due: Sequence[WebhookEndpoint]) -> None:
        now = time.monotonic()
        for endpoint in due:
            if len(self._lanes) >= MAX_LANES:
                return
            if endpoint.id in self._lanes or self._cooldown.get(endpoint.id, 0) > now:
                continue
            task = asyncio.create_task(self._lane(endpoint.id), name=f"webhook-lane-{endpoint.id}")
            self._lanes[endpoint.id] = task
            task.add_done_callback(lambda _, key=endpoint.id: self._lanes.pop(key, None))

    async def _lane(self, endpoint_id: str) -> None:
        """Deliver this endpoint's pending deliveries in order until none is left or one fails."""
        try:
            while True:
                endpoint, batch = await self._store.lane(endpoint_id, self._settings.concurrency_per_endpoint)
                if endpoint is None or not batch:
                    return
                answers = await asyncio.gather(*(self.attempt(endpoint, delivery) for delivery in batch))
                update = plan_round(
                    endpoint,
                    batch,
                    answers,
                    now_ms(),
                    self._settings.retry_schedule_s,
                    self._settings.disable_after_days,
                )
                await self._store.record_round(update)
                if update.disabled_reason is not None:
                    log.warning("webhook endpoint %s disabled: %s", endpoint_id, update.disabled_reason)
                    await self._on_disabled()
                if update.paused_until_ms is not None or update.disabled_reason is not None:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook lane for %s failed; it rests %g s", endpoint_id, COOLDOWN_S)
            self._cooldown[endpoint_id] = time.monotonic() + COOLDOWN_S

    async def attempt(self, endpoint: WebhookEndpoint, delivery: Delivery) -> Answer:
        """One attempt: check the URL again (fresh DNS answer), sign, send; never raises."""
        started_ms, started = start_clock()
        settings = self._settings
        try:
            async with asyncio.timeout(settings.timeout_s):
                destination = await addresses.check(
                    endpoint.url,
                    allow_http=settings.allow_http,
                    allow=self._allow,
                    resolver=self.resolver,
                    timeout_s=settings.timeout_s,
                )
                body = message.body(delivery.event_id, delivery.event_type, delivery.event_ms, delivery.payload)
                signing = endpoint.signing_secrets(started_ms)
                headers = message.headers(signing, delivery.event_id, started_ms // 1000, body)
                return await self.sender.post(destination, headers, body, started_ms, started)
        except addresses.Refused as exc:
            return failed(started_ms, started, f"refused: {exc}")
        except TimeoutError:
            return failed(started_ms, started, f"timed out after {settings.timeout_s:g} s")
