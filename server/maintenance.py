"""Periodic upkeep while the server runs: bodies past their retention, idempotency answers past theirs,
and events with their finished webhook deliveries past `[webhooks] retention_days` are dropped. Runs once
at start, then every `interval_s`; a failure is logged and retried next round. On a shared store one
process of the fleet does it: the one holding the `maintenance` lease (Store.hold_lease)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.clock import now_ms
from server.gateway import Gateway

log = logging.getLogger("gateway.maintenance")
DAY_MS = 86_400_000


class Maintenance:
    def __init__(self, gateway: Gateway, interval_s: float = 600.0) -> None:
        self._gateway = gateway
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def once(self) -> None:
        now = now_ms()
        freed = await self._gateway.path.bodies.purge(now)
        expired = await self._gateway.store.purge_idempotency(now)
        events = await self._gateway.store.webhooks.purge(now - self._gateway.settings.webhooks.retention_days * DAY_MS)
        if freed or expired or events:
            log.info(
                "dropped %d bytes of old request bodies, %d expired idempotency answers and %d old events",
                freed,
                expired,
                events,
            )

    async def _run(self) -> None:
        while True:
            try:
                if await self._gateway.store.hold_lease("maintenance"):
                    await self.once()
            except Exception:
                log.exception("maintenance failed (will retry)")
            await asyncio.sleep(self._interval_s)
